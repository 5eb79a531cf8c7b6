"""SampleRNN generation benchmark on PRiSM's default config (dim 1024, frames 16/64, 4 GRU layers,
256 mu-law levels), with random weights (trained weights cost the same compute).

Measures, in one run:

- ``goal``: 2 sequences x 4 s at 16 kHz (the course patch's request) at the default CPU precision
  (int8), end to end through ``generate_audio``; the goal is <= 30 s, PRiSM's own generate.py took
  391 s on this machine kind;
- ``rtf``: realtime factor (seconds of audio per second of wall time, per sequence and summed over
  the batch) at batch 1, 2 and 8, for int8 and fp32, from ``--rtf_seconds`` of audio;
- ``parts``: what each choice in generate.py saves, timed per step: the sample tier with the
  embedding x convolution x hidden1 table against embedding + convolution + hidden1 computed
  directly, the frame tier's conditioning projected once per big frame against once per frame,
  and the per-sample loop as plain Python against TorchScript.

Prints one JSON object, then one summary line. Run with the torch environment's Python:
``.cache/envs/torch/bin/python bench/samplernn.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workers.samplernn.config import SampleRNNConfig  # noqa: E402
from workers.samplernn.generate import Sampler, _SampleTier, generate_audio, output_length  # noqa: E402
from workers.samplernn.model import SampleRNN  # noqa: E402

PRISM_GENERATE_S = 391.0  # PRiSM generate.py, 2 x 4 s, default config, this machine kind (research notes)


def timed_generation(sampler: Sampler, batch: int, seconds: float, sr: int) -> dict:
    n = output_length(seconds, sr)
    start = time.perf_counter()
    generate_audio(sampler, n, np.ones((batch, 1)), rng_seed=0)
    wall = time.perf_counter() - start
    audio_s = n / sr
    return {"batch": batch, "audio_seconds": audio_s, "wall_s": round(wall, 3),
            "rtf_per_sequence": round(audio_s / wall, 4), "rtf_aggregate": round(batch * audio_s / wall, 4)}


def per_call_us(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e6


@torch.no_grad()
def parts(model: SampleRNN, sampler: Sampler, batch: int) -> dict:
    """Per-step costs of each speed-up in generate.py against computing the same thing directly."""
    cfg = model.config
    mlp = model.sample_mlp
    window = torch.randint(0, cfg.q_levels, (batch, cfg.frame_size))
    cond = torch.randn(batch, cfg.dim)

    def direct_sample_input() -> torch.Tensor:
        emb = mlp.embedding(window).transpose(1, 2)
        return mlp.hidden1(mlp.inputs(emb)[:, :, 0] + cond)

    idx = window + sampler.sample_tier.offsets

    def folded_sample_input() -> torch.Tensor:
        return F.embedding_bag(idx, sampler.table, mode="sum") + cond

    ratio = cfg.big_frame_size // cfg.frame_size
    w_ih0 = model.frame_rnn.rnn.layers[0].weight_ih_l0
    big_out = torch.randn(batch, ratio * cfg.dim)

    def conditioning_per_frame() -> None:
        up = model.big_frame_rnn.upsample.weight
        for k in range(ratio):
            F.linear(F.linear(big_out[:, k * cfg.dim:(k + 1) * cfg.dim], up[k * cfg.dim:(k + 1) * cfg.dim]), w_ih0)

    def conditioning_per_big_frame() -> None:
        sampler.frame.cond_projection(sampler.big.upsample(big_out[:, :cfg.dim]).reshape(batch * ratio, cfg.dim))

    # The per-sample loop of one frame: plain Python module against its TorchScript version.
    eager = _SampleTier(sampler.table, sampler.sample_tier.offsets, sampler.sample_tier.hidden2,
                        sampler.sample_tier.outputs, cfg.frame_size)
    hist = torch.randint(0, cfg.q_levels, (batch, 4 * cfg.big_frame_size))
    c1 = torch.randn(batch, cfg.frame_size, cfg.dim)
    inv_temp = torch.ones(batch, cfg.frame_size)
    noise = torch.randn(batch, cfg.frame_size, cfg.q_levels)
    p_f = 2 * cfg.big_frame_size

    def loop(tier) -> None:
        tier(hist, p_f, c1, inv_temp, noise, True)

    result = {
        "batch": batch,
        "precision": sampler.precision,
        "sample_loop_python_us_per_sample": round(per_call_us(lambda: loop(eager), 50) / cfg.frame_size, 1),
        "sample_loop_torchscript_us_per_sample": round(per_call_us(lambda: loop(sampler.sample_tier), 50) / cfg.frame_size, 1),
    }
    if sampler.precision == "fp32":  # the foldings, compared at the same precision
        result.update({
            "sample_tier_input_direct_us": round(per_call_us(direct_sample_input, 300), 1),
            "sample_tier_input_folded_us": round(per_call_us(folded_sample_input, 300), 1),
            "frame_conditioning_per_frame_us": round(per_call_us(conditioning_per_frame, 30), 1),
            "frame_conditioning_per_big_frame_us": round(per_call_us(conditioning_per_big_frame, 30), 1),
        })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1, as the worker uses)")
    parser.add_argument("--rtf_seconds", type=float, default=1.0, help="audio per int8 RTF measurement")
    parser.add_argument("--fp32_seconds", type=float, default=0.25, help="audio per fp32 RTF measurement")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--skip_fp32", action="store_true", help="int8 only (fp32 is slow on CPUs)")
    parser.add_argument("--goal_only", action="store_true", help="only the 2 x 4 s measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = SampleRNNConfig()  # PRiSM's default.config.json
    model = SampleRNN(config).eval()
    sr = config.sample_rate
    result: dict = {"config": config.to_dict(), "threads": args.threads, "torch": torch.__version__,
                    "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()[0]}
    samplers = {"int8": Sampler(model, "int8")}
    if not args.skip_fp32:
        samplers["fp32"] = Sampler(model, "fp32")
    for sampler in samplers.values():  # first calls pay one-off allocation and kernel setup
        timed_generation(sampler, 1, 0.05, sr)
    result["goal"] = {"request": "2 sequences x 4 s at 16 kHz", "precision": "int8",
                      **timed_generation(samplers["int8"], 2, 4.0, sr),
                      "goal_s": 30.0, "prism_generate_s": PRISM_GENERATE_S}
    if args.goal_only:
        samplers = {}
    seconds = {"int8": args.rtf_seconds, "fp32": args.fp32_seconds}
    result["rtf"] = {name: [timed_generation(s, b, seconds[name], sr) for b in args.batches]
                     for name, s in samplers.items()}
    result["parts"] = [parts(model, s, b) for s in samplers.values() for b in args.batches]
    result["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))
    goal = result["goal"]
    rtf = " ".join(f"b{r['batch']}={r['rtf_per_sequence']:.3f}" for r in result["rtf"].get("int8", []))
    print(f"samplernn: 2x4 s @16 kHz default config in {goal['wall_s']:.1f} s on CPU (int8; goal <= 30 s, "
          f"PRiSM {PRISM_GENERATE_S:.0f} s, {PRISM_GENERATE_S / goal['wall_s']:.0f}x faster)"
          + (f"; realtime factor per sequence {rtf}" if rtf else ""))


if __name__ == "__main__":
    main()
