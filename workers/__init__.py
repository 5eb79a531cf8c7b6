"""Model workers: one package per model, all built on :mod:`workers.runtime`."""
