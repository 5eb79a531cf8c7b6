"""SampleRNN (Mehri et al. 2017) in PyTorch, configured and importable the way PRiSM SampleRNN is.

model.py holds the network, quantize.py the sample <-> class mapping, prism.py the PRiSM config and
checkpoint import, generate.py the fast sampler, train.py the training command, worker.py the Pd glue.
"""
