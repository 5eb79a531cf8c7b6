"""The PRiSM -> PyTorch weight mapping for every RNN variant, against Keras' equations in numpy.

The fixture checkpoint covers a 2-layer GRU without skip connections. Here random weights with
PRiSM's variable names and shapes go through the same mapping for GRU and LSTM, with and without
skip_conn, and the PyTorch model must match a direct numpy transcription of what PRiSM's Keras
layers compute (GRU reset_after=True gates z, r, h; LSTM gates i, f, c, o; skip connections
feeding concat(x, x) to the first layer; stride = width transposed convolutions).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.samplernn.config import SampleRNNConfig
from workers.samplernn.model import SampleRNN
from workers.samplernn.prism import prism_state_dict

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


class FakeCheckpoint:
    """Stands in for TFCheckpoint: the same keys() / read() over a dict."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = {k + SUFFIX: v for k, v in arrays.items()}

    def keys(self) -> list[str]:
        return sorted(self.arrays)

    def read(self, key: str) -> np.ndarray:
        return self.arrays[key]


def prism_variables(cfg: SampleRNNConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    d, q, gates = cfg.dim, cfg.q_levels, 3 if cfg.rnn_type == "gru" else 4

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    v: dict[str, np.ndarray] = {}
    for tier, fs, ratio in (("big_frame_rnn", cfg.big_frame_size, cfg.big_frame_size // cfg.frame_size),
                            ("frame_rnn", cfg.frame_size, cfg.frame_size)):
        v[f"{tier}/inputs/kernel"], v[f"{tier}/inputs/bias"] = w(fs, d), w(d)
        for i in range(cfg.num_rnn_layers):
            cell = f"{tier}/rnn/layer_{i}/cell"
            v[f"{cell}/kernel"] = w(2 * d if cfg.skip_conn and i == 0 else d, gates * d)
            v[f"{cell}/recurrent_kernel"] = w(d, gates * d)
            v[f"{cell}/bias"] = w(2, 3 * d) if cfg.rnn_type == "gru" else w(4 * d)
            if cfg.skip_conn:
                v[f"{tier}/rnn/layer_{i}_skip_out/kernel"] = w(d, d)
                if i == 0:
                    v[f"{tier}/rnn/layer_{i}_skip_out/bias"] = w(d)
        v[f"{tier}/upsample"] = w(ratio, d, d)
    v["sample_mlp/embedding/embeddings"] = w(q, q)
    v["sample_mlp/inputs/kernel"] = w(cfg.frame_size, q, d)
    for name, shape in (("hidden1", (d, d)), ("hidden2", (d, d)), ("outputs", (d, q))):
        v[f"sample_mlp/{name}/kernel"], v[f"sample_mlp/{name}/bias"] = w(*shape), w(shape[1])
    return v


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def keras_rnn_layer(v: dict, cell: str, rnn_type: str, x: np.ndarray) -> np.ndarray:
    kernel, recurrent, bias = v[f"{cell}/kernel"], v[f"{cell}/recurrent_kernel"], v[f"{cell}/bias"]
    d = recurrent.shape[0]
    h = np.zeros((x.shape[0], d))
    c = np.zeros((x.shape[0], d))
    out = []
    for t in range(x.shape[1]):
        if rnn_type == "gru":
            xz, xr, xh = np.split(x[:, t] @ kernel + bias[0], 3, axis=1)
            hz, hr, hh = np.split(h @ recurrent + bias[1], 3, axis=1)
            z, r = sigmoid(xz + hz), sigmoid(xr + hr)
            h = z * h + (1 - z) * np.tanh(xh + r * hh)
        else:
            i, f, g, o = np.split(x[:, t] @ kernel + h @ recurrent + bias, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out, 1)


def keras_tier(v: dict, tier: str, cfg: SampleRNNConfig, q: np.ndarray, fs: int,
               cond: np.ndarray | None) -> np.ndarray:
    frames = ((q / (cfg.q_levels / 2.0)) - 1.0) * 2.0
    x = frames.reshape(q.shape[0], -1, fs) @ v[f"{tier}/inputs/kernel"] + v[f"{tier}/inputs/bias"]
    if cond is not None:
        x = x + cond
    seqs, out = x, 0.0
    for i in range(cfg.num_rnn_layers):
        layer_in = np.concatenate([seqs, x], axis=2) if (cfg.skip_conn and i == 0) else seqs
        seqs = keras_rnn_layer(v, f"{tier}/rnn/layer_{i}/cell", cfg.rnn_type, layer_in)
        if cfg.skip_conn:
            out = out + seqs @ v[f"{tier}/rnn/layer_{i}_skip_out/kernel"]
            if i == 0:
                out = out + v[f"{tier}/rnn/layer_0_skip_out/bias"]
    h = out if cfg.skip_conn else seqs
    filt = v[f"{tier}/upsample"]  # (ratio, out, in): output k of step t = filt[k] @ h[t]
    up = np.einsum("bti,koi->btko", h, filt)
    return up.reshape(q.shape[0], -1, cfg.dim)


def keras_model(v: dict, cfg: SampleRNNConfig, q: np.ndarray) -> np.ndarray:
    fs, bfs = cfg.frame_size, cfg.big_frame_size
    big = keras_tier(v, "big_frame_rnn", cfg, q[:, :-bfs], bfs, None)
    frame = keras_tier(v, "frame_rnn", cfg, q[:, bfs - fs:-fs], fs, big)
    emb = v["sample_mlp/embedding/embeddings"][q[:, bfs - fs:-1]]
    kernel = v["sample_mlp/inputs/kernel"]
    steps = q.shape[1] - bfs
    conv = sum(emb[:, k:k + steps] @ kernel[k] for k in range(fs))
    h = np.maximum((conv + frame) @ v["sample_mlp/hidden1/kernel"] + v["sample_mlp/hidden1/bias"], 0)
    h = np.maximum(h @ v["sample_mlp/hidden2/kernel"] + v["sample_mlp/hidden2/bias"], 0)
    return h @ v["sample_mlp/outputs/kernel"] + v["sample_mlp/outputs/bias"]


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
@pytest.mark.parametrize("skip_conn", [False, True])
def test_mapping_reproduces_keras_equations(rnn_type: str, skip_conn: bool) -> None:
    cfg = SampleRNNConfig(seq_len=32, frame_sizes=(4, 16), dim=8, rnn_type=rnn_type, num_rnn_layers=2,
                          q_type="linear", q_levels=16, emb_size=16, skip_conn=skip_conn)
    rng = np.random.default_rng(0)
    variables = prism_variables(cfg, rng)
    model = SampleRNN(cfg).eval()
    model.load_state_dict(prism_state_dict(FakeCheckpoint(variables), cfg))
    q = rng.integers(0, cfg.q_levels, size=(2, 16 * 4))
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(q))
    expected = keras_model({k: v.astype(np.float64) for k, v in variables.items()}, cfg, q)
    np.testing.assert_allclose(logits.numpy(), expected, atol=1e-4, rtol=1e-4)
