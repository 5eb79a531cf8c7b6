"""The 3-tier SampleRNN network (Mehri et al. 2017) laid out as PRiSM SampleRNN configures it.

Tiers, from slow to fast (PRiSM's names):

* ``big_frame_rnn``: reads frames of ``big_frame_size`` (64) samples, runs a stack of GRU/LSTM
  layers once per big frame, and upsamples each output to ``big_frame_size / frame_size``
  conditioning vectors for the tier below (a stride = width transposed convolution, i.e. one
  linear map per output position).
* ``frame_rnn``: reads frames of ``frame_size`` (16) samples, adds the conditioning from above to
  its input projection, runs its RNN stack once per frame and upsamples to one vector per sample.
* ``sample_mlp``: embeds the last ``frame_size`` samples, mixes them with a width-``frame_size``
  convolution, adds the frame conditioning and predicts the next sample's class with two ReLU
  layers and a softmax layer.

Frame tiers see samples as ``((q / (q_levels / 2)) - 1) * 2``, exactly as PRiSM scales them.
With ``skip_conn`` every RNN layer's output goes through its own linear map and the tier output is
their sum (PRiSM's variant); the first layer's input is the tier input.

This module is the training / teacher-forcing path and the reference for generate.py, which runs
the same weights one step at a time.
"""
from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from .config import SampleRNNConfig

LayerState = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]
TierState = list[LayerState]
ModelState = tuple[TierState, TierState]


class RNNStack(nn.Module):
    """Single-layer GRUs/LSTMs stacked, optionally with PRiSM-style skip connections."""

    def __init__(self, rnn_type: str, dim: int, num_layers: int, skip_conn: bool, dropout: float):
        super().__init__()
        rnn_class = nn.GRU if rnn_type == "gru" else nn.LSTM
        self.rnn_type = rnn_type
        self.dim = dim
        self.dropout = dropout
        self.layers = nn.ModuleList(rnn_class(dim, dim, batch_first=True) for _ in range(num_layers))
        self.skip = (nn.ModuleList(nn.Linear(dim, dim, bias=(i == 0)) for i in range(num_layers))
                     if skip_conn else None)

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> TierState:
        """All-zero states, as after PRiSM's ``reset_rnn_states``."""
        def zeros() -> torch.Tensor:
            return torch.zeros(1, batch_size, self.dim, device=device)
        if self.rnn_type == "gru":
            return [zeros() for _ in self.layers]
        return [(zeros(), zeros()) for _ in self.layers]

    def forward(self, x: torch.Tensor, state: TierState) -> tuple[torch.Tensor, TierState]:
        """``x``: (batch, steps, dim) -> (batch, steps, dim) and the states after the last step."""
        new_state: TierState = []
        out = None
        seq = x
        for i, layer in enumerate(self.layers):
            inp = F.dropout(seq, self.dropout, self.training) if self.dropout > 0 else seq
            seq, s = layer(inp, state[i])
            new_state.append(s)
            if self.skip is not None:
                contribution = self.skip[i](seq)
                out = contribution if out is None else out + contribution
        return (seq if self.skip is None else out), new_state


class FrameTier(nn.Module):
    """A frame-level RNN tier: frames in, one conditioning vector per lower-tier step out."""

    def __init__(self, frame_size: int, upsample_ratio: int, config: SampleRNNConfig):
        super().__init__()
        self.frame_size = frame_size
        self.upsample_ratio = upsample_ratio
        self.q_levels = config.q_levels
        dim = config.dim
        self.inputs = nn.Linear(frame_size, dim)
        self.rnn = RNNStack(config.rnn_type, dim, config.num_rnn_layers, config.skip_conn,
                            config.rnn_dropout)
        # Row (k * dim + o) maps the RNN output to output position k, channel o.
        self.upsample = nn.Linear(dim, upsample_ratio * dim, bias=False)
        nn.init.xavier_normal_(self.upsample.weight)

    def scale(self, q: torch.Tensor) -> torch.Tensor:
        """Integer classes -> the frame tiers' input range (PRiSM's scaling, about [-4, 0])."""
        return (q.float() / (self.q_levels / 2.0) - 1.0) * 2.0

    def forward(self, q: torch.Tensor, conditioning: torch.Tensor | None,
                state: TierState) -> tuple[torch.Tensor, TierState]:
        """``q``: (batch, n_frames * frame_size) classes -> (batch, n_frames * ratio, dim)."""
        batch = q.shape[0]
        frames = self.scale(q).reshape(batch, -1, self.frame_size)
        x = self.inputs(frames)
        if conditioning is not None:
            x = x + conditioning
        out, state = self.rnn(x, state)
        up = self.upsample(out).reshape(batch, -1, x.shape[-1])
        return up, state


class SampleMLP(nn.Module):
    """Sample-level tier: last ``frame_size`` samples + frame conditioning -> next-sample logits."""

    def __init__(self, config: SampleRNNConfig):
        super().__init__()
        self.frame_size = config.frame_size
        self.embedding = nn.Embedding(config.q_levels, config.emb_size)
        self.inputs = nn.Conv1d(config.emb_size, config.dim, config.frame_size, bias=False)
        self.hidden1 = nn.Linear(config.dim, config.dim)
        self.hidden2 = nn.Linear(config.dim, config.dim)
        self.outputs = nn.Linear(config.dim, config.q_levels)

    def forward(self, q: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """``q``: (batch, steps + frame_size - 1) classes; ``conditioning``: (batch, steps, dim)."""
        emb = self.embedding(q).transpose(1, 2)
        x = self.inputs(emb).transpose(1, 2) + conditioning
        x = F.relu(self.hidden1(x))
        x = F.relu(self.hidden2(x))
        return self.outputs(x)


class SampleRNN(nn.Module):
    """The whole model; ``forward`` is teacher forcing over a sequence with carried RNN state."""

    def __init__(self, config: SampleRNNConfig):
        super().__init__()
        self.config = config
        fs, bfs = config.frame_size, config.big_frame_size
        self.big_frame_rnn = FrameTier(bfs, bfs // fs, config)
        self.frame_rnn = FrameTier(fs, fs, config)
        self.sample_mlp = SampleMLP(config)

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> ModelState:
        """Zero RNN states for both frame tiers."""
        return (self.big_frame_rnn.rnn.initial_state(batch_size, device),
                self.frame_rnn.rnn.initial_state(batch_size, device))

    def forward(self, q: torch.Tensor, state: ModelState | None = None
                ) -> tuple[torch.Tensor, ModelState]:
        """Logits for every sample after the first big frame.

        ``q``: (batch, big_frame_size + n * big_frame_size) int classes. Returns logits of shape
        (batch, n * big_frame_size, q_levels) for targets ``q[:, big_frame_size:]`` and the RNN
        states to pass with the next chunk of the same sequences (truncated BPTT).
        """
        fs, bfs = self.config.frame_size, self.config.big_frame_size
        if state is None:
            state = self.initial_state(q.shape[0], q.device)
        big_cond, big_state = self.big_frame_rnn(q[:, :-bfs], None, state[0])
        cond, frame_state = self.frame_rnn(q[:, bfs - fs:-fs], big_cond, state[1])
        logits = self.sample_mlp(q[:, bfs - fs:-1], cond)
        return logits, (big_state, frame_state)


def detach_state(state: ModelState) -> ModelState:
    """Cut the graph between truncated-BPTT chunks while keeping the values."""
    def det(layer: LayerState) -> LayerState:
        if isinstance(layer, tuple):
            return (layer[0].detach(), layer[1].detach())
        return layer.detach()
    return ([det(s) for s in state[0]], [det(s) for s in state[1]])
