"""GANSynth / GANSpaceSynth worker: magenta 2.1.4 GANSynth checkpoints, latent and GANSpace editing, hallucinations."""
