"""CAW benchmark: training time per epoch per scale, generation of 30 s, peak memory.

Measured on the paper's sizes: a 25 s clip at 16 kHz (music-like, with energy down to 100 Hz, so
all 16 scales 320..16000 Hz are trained), 16/96 channels, 8 layers. Each scale is measured in a
process of its own (its peak memory is that process's high-water mark): the coarser scales get
random generators (the weights do not change the work), the scale's networks train for
``--epochs`` epochs with the real training loop (drawing the coarser scales anew every epoch,
WGAN-GP, spectrogram loss, Adam), and the time per epoch is the mean without the first epoch.
The paper preset's total is extrapolated from these slices (2000 epochs per scale), the quick
preset's likewise from its own sizes (8 kHz, 8 s, 16/32 channels, 200 epochs).

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
    """Stops training after ``epochs`` epochs (as a stop request would); notes the wall-clock and
    CPU time at the start of every epoch (training asks ``should_stop`` there)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.marks: list[tuple[float, float]] = []

    @property
    def should_stop(self) -> bool:
        self.marks.append((time.perf_counter(), time.process_time()))
        return len(self.marks) > self.epochs

    def per_epoch(self) -> tuple[float, float]:
        """Mean wall and CPU seconds per epoch, leaving out the first epoch (warm-up)."""
        (w0, c0), (w1, c1) = self.marks[1], self.marks[-1]
        n = len(self.marks) - 2
        return (w1 - w0) / n, (c1 - c0) / n

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
    clock = Slice(epochs)
    trainer = Trainer(model_dir, device, clock)
    trainer._save_checkpoint = lambda scale, state: None  # type: ignore[method-assign]  # nothing to keep
    for j in range(k):
        g = Generator.for_scale(config, j)
        g.load_state_dict(torch.load(model_dir / f"generator{j}.pt", weights_only=True))
        trainer.generators.append(g.eval().requires_grad_(False))
    trainer.rec_noise = noise
    began = time.perf_counter()
    trainer.train_scale(k)
    wall, cpu = clock.per_epoch()
    return {"fs": scales[k].fs, "samples": scales[k].length, "channels": scales[k].channels,
            "epochs": epochs, "seconds_per_epoch": wall, "cpu_seconds_per_epoch": cpu,
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
    began, cpu = time.perf_counter(), time.process_time()
    out = gen.variation(model, device, seconds, gen.generator_for(0))
    return {"seconds": seconds, "wall_s": time.perf_counter() - began, "cpu_s": time.process_time() - cpu,
            "samples": len(out), "scales": len(scales), "peak_rss_gb": peak_gb()}


def child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as tmp:
        sr, seconds = (16000, 25.0) if args.preset == "paper" else (8000, 8.0)
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
    p.add_argument("--epochs", type=int, default=3, help="epochs per measured slice (the first is not counted; >= 2)")
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

    def per_epoch(rows: dict, fs_list: list[int], key: str) -> float:
        """Sum over the scales; a scale not measured is scaled from the nearest measured one by its
        rate (the work per epoch is proportional to the samples, and to the coarser scales drawn)."""
        return sum(rows[fs][key] if fs in rows else rows[min(rows, key=lambda m: abs(m - fs))][key] * fs /
                   min(rows, key=lambda m: abs(m - fs)) for fs in fs_list)

    paper = {key: per_epoch(measured, paper_fs, key) for key in ("seconds_per_epoch", "cpu_seconds_per_epoch")}
    quick_epoch = {key: per_epoch(quick, quick_fs, key) for key in ("seconds_per_epoch", "cpu_seconds_per_epoch")}
    top = measured.get(16000)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": args.threads,
                    "torch": torch.__version__, "device": args.device, "load_average_at_end": os.getloadavg()},
        "paper": {"scales": measured, "epoch_all_scales_s": paper, "total_h_wall": paper["seconds_per_epoch"] * 2000 / 3600,
                  "total_h_cpu": paper["cpu_seconds_per_epoch"] * 2000 / 3600},
        "quick": {"scales": quick, "epoch_all_scales_s": quick_epoch,
                  "total_min_wall": quick_epoch["seconds_per_epoch"] * 200 / 60},
        "generate_30s": generation, "original": ORIGINAL, "goals": GOALS,
    }
    print(json.dumps(result, indent=1))
    wall, cpu = paper["seconds_per_epoch"], paper["cpu_seconds_per_epoch"]
    top_wall, top_cpu = (top["seconds_per_epoch"], top["cpu_seconds_per_epoch"]) if top else (float("nan"),) * 2
    original_16k = float(np.mean(ORIGINAL["epoch_16k_s"]))
    print(f"SUMMARY caw: paper preset (25 s, 16 scales) {wall:.0f} s/epoch wall, {cpu:.0f} s CPU on {args.threads} "
          f"thread(s) (original ~670 s on 2 cores: x{wall / 670:.2f} wall, x{cpu / 670:.2f} CPU); 16 kHz scale "
          f"{top_wall:.0f} s wall / {top_cpu:.0f} s CPU (original 157-182 s: x{top_wall / original_16k:.2f} / "
          f"x{top_cpu / original_16k:.2f}, goal x0.5), peak {top['peak_rss_gb'] if top else float('nan'):.1f} GB "
          f"(original 9.5, goal 4); 2000 epochs = {wall * 2000 / 3600:.0f} h wall here (report: ~10 h per file on "
          f"Colab GPUs); quick preset {quick_epoch['seconds_per_epoch'] * 200 / 60:.0f} min; 30 s generation "
          f"{generation['wall_s']:.1f} s wall / {generation['cpu_s']:.1f} s CPU (original 27, goal 10); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
