"""Reading ``dataset_statistics.pkl`` without running code from it.

A DDSP training folder may carry the dataset statistics that the colab's "auto adjust" needs
(mean pitch, loudness quantiles). ddsp writes them with ``pickle.dump``, and a pickle can name any
importable function to call while loading; a model folder downloaded from a shared drive must not
be able to run code in the worker. :class:`DataUnpickler` admits only what those files hold:
numpy arrays, scalars and dtypes, the random state numpy puts in ddsp's ``QuantileTransformer``,
that class itself and plain builtin containers. Anything else is refused with its name.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

ALLOWED = {
    ("builtins", name) for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex",
                                    "bool", "str", "bytes", "bytearray", "slice", "range", "object")
} | {
    ("copyreg", "_reconstructor"),  # protocol 0/1 objects: calls object.__new__ on an admitted class
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.random._pickle", "__randomstate_ctor"), ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"), ("numpy.random.mtrand", "RandomState"),
    ("numpy.random._mt19937", "MT19937"),
    ("ddsp.training.postprocessing", "QuantileTransformer"),
    ("ddsp.colab.colab_utils", "QuantileTransformer"),  # older ddsp releases kept it in the colab utils
}


class StatisticsError(Exception):
    """The statistics file holds something other than data, or is not a pickle."""


class DataUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in :data:`ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise StatisticsError(f"it refers to {module}.{name}, which is not data (only numpy arrays, "
                                  "builtins and ddsp's QuantileTransformer are read)")
        if module.startswith("ddsp."):
            from ddsp.training.postprocessing import QuantileTransformer  # one class for both names

            return QuantileTransformer
        return super().find_class(module, name)


def load_statistics(path: Path) -> dict[str, Any]:
    """The statistics dict of ``path`` (``mean_pitch``, ``quantile_transform``, ...)."""
    try:
        data = Path(path).read_bytes()
        stats = DataUnpickler(io.BytesIO(data)).load()
    except StatisticsError as exc:
        raise StatisticsError(f"{path} was not read: {exc}") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise StatisticsError(f"{path} is not a dataset statistics file: {exc}") from None
    if not isinstance(stats, dict):
        raise StatisticsError(f"{path} holds a {type(stats).__name__}, not a statistics dict")
    return stats
