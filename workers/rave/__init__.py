"""RAVE worker: RAVE TorchScript exports (the files nn~ loads) on Pd arrays and latent arrays."""
