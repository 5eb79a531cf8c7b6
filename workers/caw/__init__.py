"""Catch-A-Waveform (Greshler et al., NeurIPS 2021): a multi-scale GAN trained on one sound.

config.py (parameters, presets, scales), model.py (generator, discriminator, frozen inference),
resize.py (the upsampler between scales), data.py (input and per-scale signals), folder.py (our
model folders), original.py (the original code's folders), generate.py (variations, reconstruction,
conditioning, extension, inpainting, denoising), train.py (the training job and its command line),
plots.py (loss plots), worker.py (Pd messages).
"""
