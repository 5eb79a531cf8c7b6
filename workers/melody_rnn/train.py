"""magenta's ``melody_rnn_train``, runnable in the tf environment: ``python -m workers.melody_rnn.train``.

The environment's own ``melody_rnn_train`` stops at its first step on TensorFlow 2.15 (tf_slim
1.1.0 clips gradients with a name TensorFlow moved; see :func:`.bundles.tf_slim_on_tf215`). This
runs the same program with the same flags, that name put back: for example

    .cache/envs/tf/bin/python -m workers.melody_rnn.train --config=attention_rnn \\
        --run_dir=~/melody/run1 --sequence_example_file=~/melody/training_melodies.tfrecord \\
        --hparams="batch_size=64,rnn_layer_sizes=[64,64]" --num_training_steps=20000

and then ``load ~/melody/run1 --config attention_rnn --hparams rnn_layer_sizes=[64\\,64]`` in Pd.
"""
from magenta.models.melody_rnn import melody_rnn_train

from .bundles import tf_slim_on_tf215

if __name__ == "__main__":
    with tf_slim_on_tf215():
        melody_rnn_train.console_entry_point()
