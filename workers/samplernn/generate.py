"""Fast batched autoregressive sampling from a :class:`~.model.SampleRNN`.

The network is evaluated one step at a time, exactly as in the teacher-forced ``forward``, but the
weights are first rearranged so that each step does as little work as possible:

* the embedding, the sample tier's input convolution and its first hidden layer are linear in a
  row of the embedding table, so they fold into one table of ``frame_size * q_levels`` rows
  (``hidden1(conv(embed(x))) = sum_k T[k, x[t-16+k]]``): per sample one ``embedding_bag`` replaces
  an embedding, a convolution and a ``dim x dim`` matrix product;
* the first hidden layer's other input, the frame tier's upsampled output, is folded into that
  tier's upsampling matrix, so it is computed once per frame for all 16 positions;
* each frame tier's input projection is folded into its first RNN layer's input matrix, and the
  frame tier's conditioning from the big-frame tier is projected through that matrix once per big
  frame for all four frames (one read of the weights instead of four);
* sampling uses the Gumbel-max trick with noise drawn once per big frame, so a sample costs a
  divide, an add and an argmax; temperature may differ per sequence and per sample.

Per sample that leaves one gather-sum, two matrix-vector products (hidden2, outputs) and the
sampling, run as a TorchScript loop over each frame's 16 samples so the interpreter is not paid per
operation; per frame the RNN cells and the upsampling. ``precision="int8"`` swaps the large matrix
products for PyTorch's dynamically quantised int8 kernels (weights per-channel int8, activations
quantised per call), which on CPUs is several times faster because generation at small batch sizes
is limited by reading the weights from memory; the result sounds the same but is not bit-equal to
the float model (docs/models/samplernn.md has the measurements).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workers.runtime.envelope import Env

from .config import SampleRNNConfig
from .model import ModelState, SampleRNN
from .quantize import dequantize, quantize, zero_class

PRECISIONS = ("fp32", "int8")


def output_length(dur_seconds: float, sample_rate: int, big_frame_size: int = 64) -> int:
    """Samples the course's ``generate --dur D`` returns: ``D * sr - big_frame_size``.

    PRiSM generates ``D * sr`` samples (rounded down to whole big frames) and drops the first big
    frame, which only echoes the silent start; the course patch sizes its arrays for this.
    """
    total = int(round(dur_seconds * sample_rate)) // big_frame_size * big_frame_size
    return max(total - big_frame_size, 0)


def _linear(weight: torch.Tensor, bias: Optional[torch.Tensor], precision: str) -> nn.Module:
    """A module computing ``x @ weight.T + bias`` in the requested precision."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None).to(weight.device)
    with torch.no_grad():
        layer.weight.copy_(weight.detach())
        if bias is not None:
            layer.bias.copy_(bias.detach())
    if precision == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # eager-mode quantisation's deprecation notice
            return torch.ao.quantization.quantize_dynamic(
                nn.Sequential(layer), {nn.Linear}, dtype=torch.qint8)[0]
    return layer


class _SampleTier(nn.Module):
    """The per-sample loop over one frame, compiled with TorchScript.

    The work per sample is a handful of small tensor operations, so the Python interpreter's cost
    per operation is a large share of it; scripting the 16-sample loop takes about 40% off the
    per-sample time at batch 1-2 (measured in bench/samplernn.py, docs/models/samplernn.md).
    """

    def __init__(self, table: torch.Tensor, offsets: torch.Tensor, hidden2: nn.Module,
                 outputs: nn.Module, frame_size: int):
        super().__init__()
        self.register_buffer("table", table)
        self.register_buffer("offsets", offsets)
        self.hidden2 = hidden2
        self.outputs = outputs
        self.frame_size = frame_size

    def forward(self, hist: torch.Tensor, p_f: int, c1: torch.Tensor, inv_temp: torch.Tensor,
                noise: torch.Tensor, sample: bool) -> torch.Tensor:
        """Logits (B, frame_size, q) of samples ``p_f ..``; writes the sampled classes into
        ``hist`` when ``sample`` (else ``hist`` already holds them: teacher forcing)."""
        out = []
        for i in range(self.frame_size):
            p = p_f + i
            idx = hist[:, p - self.frame_size:p] + self.offsets
            a = F.embedding_bag(idx, self.table, mode="sum").add_(c1[:, i]).relu_()
            logits = self.outputs(self.hidden2(a).relu_())
            if sample:
                hist[:, p] = torch.argmax(torch.addcmul(noise[:, i], logits, inv_temp[:, i:i + 1]), 1)
            else:
                out.append(logits)
        return torch.stack(out, 1) if len(out) > 0 else noise


@dataclass
class _Cell:
    """One RNN layer, stepped: ``w_ih`` is None for a first layer whose input gates are given."""

    kind: str
    w_ih: Optional[nn.Module]
    w_hh: nn.Module
    skip: Optional[nn.Module]

    def step(self, gi: torch.Tensor, h: torch.Tensor, c: Optional[torch.Tensor]
             ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        gh = self.w_hh(h)
        if self.kind == "gru":
            i_r, i_z, i_n = gi.chunk(3, 1)
            h_r, h_z, h_n = gh.chunk(3, 1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(torch.addcmul(i_n, r, h_n))
            return torch.lerp(n, h, z), None
        gates = gi + gh
        i, f, g, o = gates.chunk(4, 1)
        assert c is not None
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class _Tier:
    """A frame tier prepared for stepping: folded input projection, cells, upsampling."""

    def __init__(self, tier: nn.Module, config: SampleRNNConfig, up_weight: torch.Tensor,
                 up_bias: Optional[torch.Tensor], precision: str):
        self.kind = config.rnn_type
        self.q_half = config.q_levels / 2.0
        rnn = tier.rnn
        layers = list(rnn.layers)
        first = layers[0]
        w_ih0 = first.weight_ih_l0.detach()
        # gi0 = W_ih0 (W_in x + b_in + cond) + b_ih0 = A x + W_ih0 cond + c0
        self.input_matrix = (w_ih0 @ tier.inputs.weight.detach()).contiguous()
        self.input_bias = (w_ih0 @ tier.inputs.bias.detach() + first.bias_ih_l0.detach()).contiguous()
        self.cond_projection = _linear(w_ih0, None, precision)
        self.cells = []
        for i, layer in enumerate(layers):
            skip = None
            if rnn.skip is not None:
                s = rnn.skip[i]
                skip = _linear(s.weight, s.bias, precision)
            self.cells.append(_Cell(
                self.kind,
                None if i == 0 else _linear(layer.weight_ih_l0, layer.bias_ih_l0, precision),
                _linear(layer.weight_hh_l0, layer.bias_hh_l0, precision), skip))
        self.upsample = _linear(up_weight, up_bias, precision)
        self.skip_conn = rnn.skip is not None

    def step(self, q_frame: torch.Tensor, cond_gates: Optional[torch.Tensor],
             state: list[list[torch.Tensor]]) -> torch.Tensor:
        """One frame in (B, frame_size) classes -> upsampled output (B, ratio * out_dim)."""
        x = (q_frame.float() / self.q_half - 1.0) * 2.0
        gi = torch.addmm(self.input_bias, x, self.input_matrix.t())
        if cond_gates is not None:
            gi = gi + cond_gates
        seq = None
        out = None
        for i, cell in enumerate(self.cells):
            if i > 0:
                gi = cell.w_ih(seq)
            h, c = state[i][0], (state[i][1] if self.kind == "lstm" else None)
            h, c = cell.step(gi, h, c)
            state[i] = [h, c] if c is not None else [h]
            seq = h
            if cell.skip is not None:
                contribution = cell.skip(seq)
                out = contribution if out is None else out + contribution
        return self.upsample(seq if out is None else out)


def _state_for_sampler(state: list, kind: str) -> list[list[torch.Tensor]]:
    """Module state ((1, B, d) tensors or LSTM (h, c) tuples) -> per-layer [h] or [h, c] (B, d)."""
    if kind == "gru":
        return [[s[0].clone()] for s in state]
    return [[s[0][0].clone(), s[1][0].clone()] for s in state]


class Sampler:
    """A model prepared for fast generation at a given precision (build once, sample many times)."""

    def __init__(self, model: SampleRNN, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        model = model.eval()
        self.model = model
        self.device = next(model.parameters()).device
        if precision == "int8" and self.device.type != "cpu":
            raise ValueError("int8 precision runs on the CPU only; use fp32 on a GPU")
        self.config = cfg = model.config
        self.precision = precision
        with torch.no_grad():
            mlp = model.sample_mlp
            w1, b1 = mlp.hidden1.weight.detach(), mlp.hidden1.bias.detach()
            self.big = _Tier(model.big_frame_rnn, cfg, model.big_frame_rnn.upsample.weight, None,
                             precision)
            # hidden1 folded into the frame tier's upsampling: row block k is W1 @ U_k.
            fs, dim = cfg.frame_size, cfg.dim
            up = model.frame_rnn.upsample.weight.detach().reshape(fs, dim, dim)
            up_h1 = torch.matmul(w1, up).reshape(fs * dim, dim)
            self.frame = _Tier(model.frame_rnn, cfg, up_h1, b1.repeat(fs), precision)
            # table[k * q + c] = W1 @ conv_k @ emb[c]
            conv = mlp.inputs.weight.detach()  # (dim, emb, fs)
            emb = mlp.embedding.weight.detach()  # (q, emb)
            table = torch.einsum("qe,dek->kqd", emb, conv)
            self.table = (table.reshape(-1, dim) @ w1.t()).contiguous()
            offsets = torch.arange(fs, device=self.device) * cfg.q_levels
            tier = _SampleTier(self.table, offsets, _linear(mlp.hidden2.weight, mlp.hidden2.bias, precision),
                               _linear(mlp.outputs.weight, mlp.outputs.bias, precision), fs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit's deprecation notice
                self.sample_tier = torch.jit.script(tier)

    def _prime(self, q: torch.Tensor) -> ModelState:
        """Run the (float) model over all but the last big frame of ``q`` to set the RNN states."""
        state = self.model.initial_state(q.shape[0], self.device)
        if q.shape[1] > self.config.big_frame_size:
            _, state = self.model(q, state)
        return state

    @torch.no_grad()
    def sample(self, num_samples: int, temperature: np.ndarray, seed: Optional[Sequence[Optional[np.ndarray]]] = None,
               rng_seed: Optional[int] = None,
               progress: Optional[Callable[[float], None]] = None) -> np.ndarray:
        """Generate ``num_samples`` classes per sequence after a context; returns int64 (B, n).

        ``temperature``: (B, 1) or (B, num_samples) float, > 0. ``seed``: per sequence, None or
        quantised classes (1-D int array) that prime the model: the RNN states run over all of it
        and its last big frame is the context. Without a seed the context is silence.
        ``progress(fraction)`` is called after every big frame; an exception from it stops the loop.
        """
        cfg = self.config
        temperature = np.asarray(temperature, dtype=np.float64)
        batch = temperature.shape[0]
        bfs, q_levels = cfg.big_frame_size, cfg.q_levels
        context = self._contexts(batch, seed).to(self.device)
        state = self._prime(context)
        big_state = _state_for_sampler(state[0], cfg.rnn_type)
        frame_state = _state_for_sampler(state[1], cfg.rnn_type)

        n_big = math.ceil(num_samples / bfs)
        hist = torch.empty(batch, bfs + n_big * bfs, dtype=torch.long, device=self.device)
        hist[:, :bfs] = context[:, -bfs:]
        temps = torch.from_numpy(temperature.astype(np.float32)).to(self.device)
        if temps.shape[1] > 1:  # one value per sample, padded to whole big frames
            temps = temps[:, :num_samples]
            temps = torch.cat([temps, temps[:, -1:].expand(batch, n_big * bfs - temps.shape[1])], 1)
        inv_temp = 1.0 / temps
        per_sample_temp = inv_temp.shape[1] > 1
        generator = torch.Generator(device=self.device)
        generator.manual_seed(rng_seed if rng_seed is not None else int(torch.randint(2**62, (1,))))

        def frame_inputs(j: int) -> tuple[torch.Tensor, torch.Tensor]:
            uniform = torch.rand(batch, bfs, q_levels, generator=generator,
                                 device=self.device).clamp_(min=1e-20)
            scale = inv_temp[:, j * bfs:(j + 1) * bfs] if per_sample_temp else inv_temp.expand(batch, bfs)
            return scale, -torch.log(-torch.log(uniform))

        self._loop(hist, n_big, big_state, frame_state, frame_inputs, None, progress)
        return hist[:, bfs:bfs + num_samples].cpu().numpy()

    @torch.no_grad()
    def teacher_forced_logits(self, q: np.ndarray) -> np.ndarray:
        """Logits of the stepped network for ``q[:, big_frame_size:]`` given the true samples.

        ``q``: (B, big_frame_size + n * big_frame_size) classes. Same contract as
        ``SampleRNN.forward``; used to check that the folded weights compute the same function.
        """
        cfg = self.config
        hist = torch.as_tensor(np.asarray(q, dtype=np.int64), device=self.device)
        batch, bfs = hist.shape[0], cfg.big_frame_size
        n_big = hist.shape[1] // bfs - 1
        state = self.model.initial_state(batch, self.device)
        out = torch.empty(batch, n_big * bfs, cfg.q_levels, device=self.device)

        self._loop(hist, n_big, _state_for_sampler(state[0], cfg.rnn_type),
                   _state_for_sampler(state[1], cfg.rnn_type), None, out, None)
        return out.cpu().numpy()

    def _loop(self, hist: torch.Tensor, n_big: int, big_state: list[list[torch.Tensor]],
              frame_state: list[list[torch.Tensor]],
              frame_inputs: Optional[Callable[[int], tuple[torch.Tensor, torch.Tensor]]],
              logits_out: Optional[torch.Tensor],
              progress: Optional[Callable[[float], None]]) -> None:
        """Step all tiers over ``n_big`` big frames after the context in ``hist``.

        Sampling: ``frame_inputs(j)`` gives big frame j's inverse temperatures (B, bfs) and Gumbel
        noise (B, bfs, q), and the classes are written into ``hist``. Teacher forcing:
        ``frame_inputs`` is None, ``hist`` holds the classes and the logits go to ``logits_out``.
        """
        cfg = self.config
        bfs, fs, dim = cfg.big_frame_size, cfg.frame_size, cfg.dim
        batch = hist.shape[0]
        ratio = bfs // fs
        empty = torch.empty(0, device=self.device)
        for j in range(n_big):
            p_big = bfs + j * bfs
            inv_temp, noise = frame_inputs(j) if frame_inputs is not None else (empty, empty)
            big_out = self.big.step(hist[:, p_big - bfs:p_big], None, big_state)
            cond_gates = self.frame.cond_projection(big_out.reshape(batch * ratio, dim))
            cond_gates = cond_gates.reshape(batch, ratio, -1)
            for f in range(ratio):
                p_f = p_big + f * fs
                c1 = self.frame.step(hist[:, p_f - fs:p_f], cond_gates[:, f], frame_state)
                c1 = c1.reshape(batch, fs, dim)
                if frame_inputs is not None:
                    self.sample_tier(hist, p_f, c1, inv_temp[:, f * fs:(f + 1) * fs],
                                     noise[:, f * fs:(f + 1) * fs], True)
                else:
                    assert logits_out is not None
                    k = p_f - bfs
                    logits_out[:, k:k + fs] = self.sample_tier(hist, p_f, c1, empty, empty, False)
            if progress is not None:
                progress((j + 1) / n_big)

    def _contexts(self, batch: int, seed: Optional[Sequence[Optional[np.ndarray]]]) -> torch.Tensor:
        """(B, L) classes to prime with: seeds right-aligned to whole big frames, silence elsewhere."""
        bfs = self.config.big_frame_size
        zero = zero_class(self.config.q_levels)
        seeds = list(seed) if seed is not None else [None] * batch
        if len(seeds) != batch:
            raise ValueError(f"{len(seeds)} seeds for {batch} sequences")
        longest = max([len(s) for s in seeds if s is not None] + [bfs])
        length = math.ceil(longest / bfs) * bfs
        ctx = torch.full((batch, length), zero, dtype=torch.long)
        for i, s in enumerate(seeds):
            if s is not None and len(s):
                ctx[i, length - len(s):] = torch.as_tensor(np.asarray(s, dtype=np.int64))
        return ctx


def generate_audio(sampler: Sampler, num_samples: int, temperature: np.ndarray,
                   seed_audio: Optional[Sequence[Optional[np.ndarray]]] = None,
                   rng_seed: Optional[int] = None,
                   progress: Optional[Callable[[float], None]] = None) -> np.ndarray:
    """Float32 audio (B, num_samples) at the model's rate, PRiSM-style.

    Without a seed the model starts from silence and the first big frame it generates is
    dropped (PRiSM does the same; it is a transient from the silent start). With a seed (float
    audio at the model's rate, per sequence) generation continues right after the seed.
    """
    cfg = sampler.config
    seeded = seed_audio is not None and any(s is not None and len(s) for s in seed_audio)
    seed_q = None
    if seeded:
        seed_q = [None if s is None or not len(s) else quantize(s, cfg.q_type, cfg.q_levels)
                  for s in seed_audio]
    warmup = 0 if seeded else cfg.big_frame_size
    temperature = np.asarray(temperature, dtype=np.float64)
    if temperature.ndim == 1:
        temperature = temperature[:, None]
    if temperature.shape[1] > 1:
        temperature = np.concatenate([np.repeat(temperature[:, :1], warmup, 1), temperature], 1)
    q = sampler.sample(num_samples + warmup, temperature, seed_q, rng_seed, progress)
    return dequantize(q[:, warmup:], cfg.q_type, cfg.q_levels)


def temperature_matrix(temperatures: Sequence[float | Env], num_samples: int, sample_rate: int
                       ) -> np.ndarray:
    """One temperature per sequence, or per sample where any is an envelope.

    Numbers give a constant; an ``Env`` is evaluated at every output sample's time
    (``i / sample_rate`` seconds, last level held), as the course's fork of PRiSM did.
    Returns float64 (B, 1) when all are numbers, else (B, num_samples).
    """
    if any(isinstance(t, Env) for t in temperatures):
        rows = [t.render(num_samples, sample_rate) if isinstance(t, Env)
                else np.full(num_samples, float(t)) for t in temperatures]
        out = np.stack(rows)
    else:
        out = np.asarray([[float(t)] for t in temperatures], dtype=np.float64)
    if not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise ValueError("temperatures must be positive numbers (try 0.7 to 1.1)")
    return out
