"""Import PRiSM SampleRNN checkpoints (Keras ``save_weights`` + ``*.config.json``).

PRiSM's variable names are object-graph paths (``frame_rnn/rnn/layer_0/cell/kernel``, ...). This
module maps each onto the matching parameter of :class:`~.model.SampleRNN`:

* Dense ``kernel`` (in, out) -> ``Linear.weight`` (out, in).
* Keras GRU (``reset_after=True``): ``kernel`` (in, 3*dim) and ``recurrent_kernel`` (dim, 3*dim)
  with gates ordered z, r, h; ``bias`` (2, 3*dim) = input and recurrent biases. PyTorch orders the
  gates r, z, n and uses the same reset-after formula, so only the gate order changes.
* Keras LSTM: gates i, f, c, o, as in PyTorch; one bias, which becomes ``bias_ih``.
* ``upsample`` (width, dim_out, dim_in) transposed-conv filter with stride = width -> a Linear whose
  row ``k * dim + o`` is ``filter[k, o, :]``.
* ``sample_mlp/inputs`` Conv1D kernel (width, emb, dim) -> Conv1d weight (dim, emb, width).
* With ``skip_conn`` PRiSM feeds ``concat(x, x)`` to the first RNN layer; the two halves of its
  input kernel act on the same vector, so they are summed into one (dim, 3*dim) kernel.

The whole model loads or nothing does: a missing, extra or mis-shaped variable is an error.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from .config import SampleRNNConfig
from .model import SampleRNN
from .tf_checkpoint import TFCheckpoint

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_CKPT_RE = re.compile(r"^model\.ckpt-(\d+)\.index$")


class PrismImportError(ValueError):
    """The checkpoint does not match the config, or is not a PRiSM SampleRNN checkpoint."""


def find_prism_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(epoch, prefix)`` of every ``model.ckpt-N.index`` directly in ``folder``."""
    found = []
    for path in folder.iterdir() if folder.is_dir() else []:
        match = _CKPT_RE.match(path.name)
        if match:
            found.append((int(match.group(1)), folder / path.name[: -len(".index")]))
    return sorted(found)


def _model_variables(ckpt: TFCheckpoint) -> dict[str, str]:
    """Short name (``frame_rnn/inputs/kernel``) -> stored key, model variables only."""
    return {k[: -len(_SUFFIX)]: k for k in ckpt.keys()
            if k.endswith(_SUFFIX) and not k.startswith(("optimizer/", "save_counter"))}


def _reorder_gru(w: np.ndarray, dim: int) -> np.ndarray:
    """Keras z|r|h gate blocks along the last axis -> PyTorch r|z|n."""
    z, r, h = w[..., :dim], w[..., dim:2 * dim], w[..., 2 * dim:]
    return np.concatenate([r, z, h], axis=-1)


def _rnn_params(get, prefix: str, config: SampleRNNConfig, out_prefix: str) -> dict[str, np.ndarray]:
    dim = config.dim
    params: dict[str, np.ndarray] = {}
    for i in range(config.num_rnn_layers):
        cell = f"{prefix}/rnn/layer_{i}/cell"
        kernel, recurrent, bias = get(f"{cell}/kernel"), get(f"{cell}/recurrent_kernel"), get(f"{cell}/bias")
        if recurrent.shape[0] != dim:
            raise PrismImportError(
                f"{cell} has {recurrent.shape[0]} units but the config says dim={dim}")
        if config.skip_conn and i == 0:
            if kernel.shape[0] != 2 * dim:
                raise PrismImportError(
                    f"{cell}/kernel has shape {kernel.shape}; skip_conn expects {2 * dim} inputs")
            kernel = kernel[:dim] + kernel[dim:]
        out = f"{out_prefix}.rnn.layers.{i}"
        if config.rnn_type == "gru":
            if bias.shape != (2, 3 * dim):
                raise PrismImportError(
                    f"{cell}/bias has shape {bias.shape}; only Keras GRUs with reset_after=True "
                    f"(bias (2, {3 * dim})) are supported")
            params[f"{out}.weight_ih_l0"] = _reorder_gru(kernel, dim).T
            params[f"{out}.weight_hh_l0"] = _reorder_gru(recurrent, dim).T
            params[f"{out}.bias_ih_l0"] = _reorder_gru(bias[0], dim)
            params[f"{out}.bias_hh_l0"] = _reorder_gru(bias[1], dim)
        else:
            params[f"{out}.weight_ih_l0"] = kernel.T
            params[f"{out}.weight_hh_l0"] = recurrent.T
            params[f"{out}.bias_ih_l0"] = bias
            params[f"{out}.bias_hh_l0"] = np.zeros_like(bias)
        if config.skip_conn:
            skip = f"{prefix}/rnn/layer_{i}_skip_out"
            params[f"{out_prefix}.rnn.skip.{i}.weight"] = get(f"{skip}/kernel").T
            if i == 0:
                params[f"{out_prefix}.rnn.skip.{i}.bias"] = get(f"{skip}/bias")
    return params


def prism_state_dict(ckpt: TFCheckpoint, config: SampleRNNConfig) -> dict[str, torch.Tensor]:
    """Every SampleRNN parameter from a PRiSM checkpoint, named as in :class:`SampleRNN`."""
    names = _model_variables(ckpt)
    used: set[str] = set()

    def get(name: str) -> np.ndarray:
        if name not in names:
            raise PrismImportError(
                f"variable {name} is missing from the checkpoint; does the config match it? "
                f"(rnn_type={config.rnn_type}, num_rnn_layers={config.num_rnn_layers}, "
                f"skip_conn={config.skip_conn})")
        used.add(name)
        return ckpt.read(names[name]).astype(np.float32)

    params: dict[str, np.ndarray] = {}
    for tier in ("big_frame_rnn", "frame_rnn"):
        params[f"{tier}.inputs.weight"] = get(f"{tier}/inputs/kernel").T
        params[f"{tier}.inputs.bias"] = get(f"{tier}/inputs/bias")
        params.update(_rnn_params(get, tier, config, tier))
        up = get(f"{tier}/upsample")
        params[f"{tier}.upsample.weight"] = up.reshape(up.shape[0] * up.shape[1], up.shape[2])
    params["sample_mlp.embedding.weight"] = get("sample_mlp/embedding/embeddings")
    params["sample_mlp.inputs.weight"] = get("sample_mlp/inputs/kernel").transpose(2, 1, 0)
    for layer in ("hidden1", "hidden2", "outputs"):
        params[f"sample_mlp.{layer}.weight"] = get(f"sample_mlp/{layer}/kernel").T
        params[f"sample_mlp.{layer}.bias"] = get(f"sample_mlp/{layer}/bias")
    unused = sorted(set(names) - used)
    if unused:
        raise PrismImportError(f"checkpoint has variables this config does not use: {unused[:5]}")
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}


def load_prism_model(prefix: str | Path, config: SampleRNNConfig) -> tuple[SampleRNN, SampleRNNConfig]:
    """Build a :class:`SampleRNN` holding a PRiSM checkpoint's weights.

    ``prefix`` is the path without ``.index`` (``.../model.ckpt-12``). The returned config has
    ``emb_size = q_levels`` because PRiSM's embedding is always that wide.
    """
    ckpt = TFCheckpoint(prefix)
    names = _model_variables(ckpt)
    emb_key = names.get("sample_mlp/embedding/embeddings")
    if emb_key is None:
        raise PrismImportError(f"{prefix} is not a PRiSM SampleRNN checkpoint (no sample_mlp embedding)")
    emb_shape = ckpt.shape(emb_key)
    if emb_shape[0] != config.q_levels:
        raise PrismImportError(
            f"checkpoint has {emb_shape[0]} quantisation levels, config says q_levels={config.q_levels}")
    config = config.with_changes(emb_size=int(emb_shape[1]))
    model = SampleRNN(config)
    state = prism_state_dict(ckpt, config)
    expected = model.state_dict()
    for name, tensor in state.items():
        if name not in expected or expected[name].shape != tensor.shape:
            want = tuple(expected[name].shape) if name in expected else "nothing"
            raise PrismImportError(
                f"{name}: checkpoint gives shape {tuple(tensor.shape)}, the config needs {want}; "
                f"check dim/frame_sizes/q_levels in the config")
    missing = set(expected) - set(state)
    if missing:
        raise PrismImportError(f"checkpoint lacks parameters {sorted(missing)[:5]}")
    model.load_state_dict(state)
    model.eval()
    return model, config
