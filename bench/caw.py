"""CAW benchmark: training time per epoch per scale, generation of 30 s, peak memory.

Measured on the paper's sizes: a 25 s clip at 16 kHz (music-like, with energy down to 100 Hz, so
all 16 scales 320..16000 Hz are trained), 16/96 channels, 8 layers. Each scale is measured in a
process of its own (its peak memory is that process's high-water mark): the coarser scales get
random generators (the weights do not change the work), the scale's networks train for
``--epochs`` epochs with the real training loop (drawing the coarser scales anew every epoch,
WGAN-GP, spectrogram loss, Adam), and the time per epoch is the mean without the first epoch.
The paper preset's total is extrapolated from these slices (2000 epochs per scale), the quick
preset's likewise from its own sizes (8 kHz, 10 s, 16/32 channels, 300 epochs).

Compared with the original code's numbers measured on 2 CPU cores (the issue): 25 s input, about
670 s per epoch summed over 16 scales, 157-182 s at the 16 kHz scale, 9.5 GB peak; 30 s
generation 27 s; and with the songwriting study's "about 10 hours per file" on Colab GPUs.

Prints one JSON object, then one line starting ``SUMMARY caw:``. Run with the torch environment:
``.cache/envs/torch/bin/python bench/caw.py [--scales 16000 8000 ...] [--epochs 3] [--threads 2]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers.caw import generate as gen  # noqa: E402
from workers.caw.config import CAWConfig, ScaleInfo, preset  # noqa: E402
from workers.caw.folder import NOISE_FILE, load_model, read_manifest, save_tensors, write_manifest  # noqa: E402
from workers.caw.model import Discriminator, Generator  # noqa: E402
from workers.caw.train import Trainer, start  # noqa: E402

ORIGINAL = {"epoch_all_scales_s": 670.0, "epoch_16k_s": (157.0, 182.0), "peak_16k_gb": 9.5, "generate_30s_s": 27.0,
            "report_hours_per_file": 10.0}
GOALS = {"epoch_ratio": 0.5, "peak_16k_gb": 4.0, "generate_30s_s": 10.0}


def music(seconds: float, sr: int) -> np.ndarray:
    """Bass and chords with harmonics up to 6 kHz and a little noise: energy at every scale."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for i, f0 in enumerate((110.0, 220.0, 330.0, 440.0, 554.0, 660.0)):
        env = 0.5 + 0.5 * np.sin(2 * np.pi * (0.25 + 0.1 * i) * t)
        x += env * sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) / k for k in range(1, 10) if k * f0 < 6000)
    x += 0.05 * rng.standard_normal(len(t))
    return (0.8 * x / np.abs(x).max()).astype(np.float32)


class Slice:
    """Stops training after ``epochs`` epochs (as a stop request would) and keeps nothing else."""

    def __init__(self, epochs: int) -> None:
        self.epochs, self.checks = epochs, 0

    @property
    def should_stop(self) -> bool:
        self.checks += 1
        return self.checks > self.epochs

    def progress(self, fraction: float, text: str = "") -> None:
        pass

    def log(self, text: str) -> None:
        pass


def lay_out(folder: Path, name: str, sr: int, seconds: float) -> Path:
    """A model folder for the preset with every scale's signal, and random generators marked done."""
    config = preset(name, seed=0)
    clip = folder / "clip.wav"
    sf.write(clip, music(seconds, sr), sr, subtype="FLOAT")
    model = folder / name
    start(model, clip, config)
    return model


def measure_scale(model_dir: Path, k: int, epochs: int, device: str) -> dict:
    """Train scale ``k`` for a slice of epochs with random coarser generators; seconds per epoch."""
    manifest = read_manifest(model_dir)
    config = CAWConfig.from_dict(manifest["config"])
    scales = [ScaleInfo.from_dict(s) for s in manifest["scales"]]
    torch.manual_seed(0)
    noise = []
    for j in range(k):
        save_tensors(model_dir / f"generator{j}.pt", Generator.for_scale(config, j).state_dict())
        save_tensors(model_dir / f"discriminator{j}.pt", Discriminator.for_scale(config, j).state_dict())
        scales[j].epochs_done, scales[j].noise_amp = config.num_epochs, 0.01 if j else 1.0
        noise.append(torch.randn(1, 1, scales[j].length + 2 * config.pad) * scales[j].noise_amp)
    save_tensors(model_dir / NOISE_FILE, {"noise": noise})
    write_manifest(model_dir, config, int(manifest["fs"]), float(manifest["norm_factor"]), scales)
    trainer = Trainer(model_dir, device, Slice(epochs))
    times: list[float] = []  # the stop's checkpoint is where the slice's training time is read
    trainer._save_checkpoint = lambda scale, state: times.append(state.seconds)  # type: ignore[method-assign]
    for j in range(k):
        g = Generator.for_scale(config, j)
        g.load_state_dict(torch.load(model_dir / f"generator{j}.pt", weights_only=True))
        trainer.generators.append(g.eval().requires_grad_(False))
    trainer.rec_noise = noise
    began = time.perf_counter()
    trainer.train_scale(k)
    return {"fs": scales[k].fs, "samples": scales[k].length, "channels": scales[k].channels,
            "epochs": epochs, "seconds_per_epoch": times[0] / epochs if times else None,
            "wall_s": time.perf_counter() - began, "peak_rss_gb": peak_gb()}


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def measure_generation(model_dir: Path, seconds: float, device: str) -> dict:
    manifest = read_manifest(model_dir)
    config = CAWConfig.from_dict(manifest["config"])
    scales = [ScaleInfo.from_dict(s) for s in manifest["scales"]]
    torch.manual_seed(0)
    for j, s in enumerate(scales):
        save_tensors(model_dir / f"generator{j}.pt", Generator.for_scale(config, j).state_dict())
        s.epochs_done, s.noise_amp = config.num_epochs, 0.01 if j else 1.0
    save_tensors(model_dir / NOISE_FILE, {"noise": [torch.zeros(1, 1, s.length + 2 * config.pad) for s in scales]})
    write_manifest(model_dir, config, int(manifest["fs"]), float(manifest["norm_factor"]), scales)
    model = load_model(model_dir, device)
    model.frozen(device)
    began = time.perf_counter()
    out = gen.variation(model, device, seconds, gen.generator_for(0))
    return {"seconds": seconds, "wall_s": time.perf_counter() - began, "samples": len(out), "scales": len(scales),
            "peak_rss_gb": peak_gb()}


def child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as tmp:
        sr, seconds = (16000, 25.0) if args.preset == "paper" else (8000, 10.0)
        model_dir = lay_out(Path(tmp), args.preset, sr, seconds)
        if args.child == "generate":
            print(json.dumps(measure_generation(model_dir, 30.0, args.device)))
        else:
            fs_list = [s["fs"] for s in read_manifest(model_dir)["scales"]]
            print(json.dumps(measure_scale(model_dir, fs_list.index(int(args.child)), args.epochs, args.device)))


def run_child(what: str, args: argparse.Namespace, preset_name: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", what, "--preset", preset_name, "--epochs",
                          str(args.epochs), "--threads", str(args.threads), "--device", args.device],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{what}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", type=int, nargs="*", help="paper-preset scales to measure (default: all 16)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per measured slice (the first is not counted)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--preset", default="paper", help=argparse.SUPPRESS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    paper_fs = [320, 400, 500, 640, 800, 1000, 1280, 1600, 2000, 2500, 4000, 8000, 10000, 12000, 14400, 16000]
    measured = {fs: run_child(str(fs), args, "paper") for fs in (args.scales or paper_fs)}
    quick_fs = [320, 400, 500, 640, 800, 1000, 1280, 1600, 2000, 2500, 4000, 8000]
    quick = {fs: run_child(str(fs), args, "quick") for fs in quick_fs}
    generation = run_child("generate", args, "paper")

    def per_epoch(rows: dict, fs_list: list[int]) -> float:
        """Sum over the scales; a scale not measured is scaled from the nearest measured one by
        samples x channels^2 (the convolutions' work)."""
        total = 0.0
        for fs in fs_list:
            if fs in rows:
                total += rows[fs]["seconds_per_epoch"]
                continue
            near = min(rows, key=lambda m: abs(m - fs))
            total += rows[near]["seconds_per_epoch"] * fs / near
        return total

    paper_epoch = per_epoch(measured, paper_fs)
    quick_epoch = per_epoch(quick, quick_fs)
    top = measured.get(16000)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": args.threads,
                    "torch": torch.__version__, "device": args.device,
                    "load_average_at_end": os.getloadavg()},
        "paper": {"scales": measured, "epoch_all_scales_s": paper_epoch, "total_h": paper_epoch * 2000 / 3600},
        "quick": {"scales": quick, "epoch_all_scales_s": quick_epoch, "total_min": quick_epoch * 300 / 60},
        "generate_30s": generation, "original": ORIGINAL, "goals": GOALS,
    }
    print(json.dumps(result, indent=1))
    ratio_16k = top["seconds_per_epoch"] / np.mean(ORIGINAL["epoch_16k_s"]) if top else float("nan")
    worst = max(row["seconds_per_epoch"] / (ORIGINAL["epoch_16k_s"][0] * fs / 16000) for fs, row in measured.items())
    print(f"SUMMARY caw: paper preset {paper_epoch:.0f} s/epoch over 16 scales (original ~670 s: "
          f"x{paper_epoch / ORIGINAL['epoch_all_scales_s']:.2f}; 16 kHz scale {top['seconds_per_epoch'] if top else 0:.0f} s, "
          f"x{ratio_16k:.2f}; worst scale vs the original's time scaled by rate x{worst:.2f}), "
          f"{paper_epoch * 2000 / 3600:.0f} h for 2000 epochs on {args.threads} CPU threads (report: ~10 h per file on "
          f"Colab GPUs); quick preset {quick_epoch * 300 / 60:.0f} min; peak {top['peak_rss_gb'] if top else 0:.1f} GB at "
          f"16 kHz (original 9.5, goal 4); 30 s generation {generation['wall_s']:.1f} s (original 27, goal 10)")


if __name__ == "__main__":
    main()
