"""DDSP timbre transfer (ddsp 3.7.0): ``[pdbridge.ddsp]``. See docs/models/ddsp.md.

Importing this package imports TensorFlow quietly and makes ``import ddsp`` work without the
crepe package (see :mod:`.crepe_module`), so import it before ddsp.
"""
import contextlib
import os
from typing import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 while TensorFlow's native libraries load.

    Importing TF 2.15 prints "Unable to register cuDNN/cuFFT/cuBLAS factory" errors from C++ on
    every machine, GPU or not, ignoring TF_CPP_MIN_LOG_LEVEL; in the Pd console they look like
    failures. Python exceptions raised by the import still propagate (after stderr is restored).
    """
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


with _native_stderr_silenced():
    import tensorflow  # noqa: E402,F401

from .crepe_module import install as _install_crepe  # noqa: E402

_install_crepe()
