"""Diagnostics worker: test tones, array echo and deliberate failures for bridge tests and benchmarks.

Not a model. It exists so the whole Pd -> hub -> worker -> Pd path, and every way it can fail, can
be exercised without a model environment.
"""
