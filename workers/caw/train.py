"""Training CAW: one scale after the other, as a job (``run_job``) or from a shell (``main``).

Each scale trains a fresh generator and discriminator (scales 2 and up start from the previous
scale's weights, scale 1 from scratch: the published models were trained so, and the newer upstream
change that also copies scale 0's 16-channel weights into scale 1's 96 fails). Every step is one
WGAN-GP discriminator update and one generator update on the whole signal: the generator turns
noise plus the coarser scales' output (drawn anew every step with the trained coarser generators)
into this scale's signal, and also rebuilds the clip from the fixed reconstruction noise, tied to
it by the reconstruction loss. Adam (lr 0.0015, beta1 0.5), the rate times 0.1 at 2/3 of the epochs.

Everything needed to go on is in the model folder (folder.py): a stopped or killed job resumes at
the last checkpoint (written every minute and on stop) with the same random stream, so it ends
with the model an uninterrupted run would have made.

Shell::

    pdbridge train caw clip.wav my_model --preset quick [--epochs N] [--device cuda] [--detach]
    python -m workers.caw.train clip.wav my_model ...     (the same, in the torch environment)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol, Sequence

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from pdwire.jobs import JobError, JobFolder, jobs_root

from .config import PRESETS, RUN_MODES, CAWConfig, ConfigError, ScaleInfo, preset
from .data import hole_layout, prepare
from .folder import (MANIFEST, NOISE_FILE, CAWModel, ModelFolderError, load_tensors, read_manifest, save_tensors,
                     write_manifest, write_wav)
from .generate import fresh_noise, run_scales
from .losses import gradient_penalty, reconstruction_loss
from .model import Discriminator, FrozenGenerator, Generator
from .plots import plot_losses
from .resize import upsample

ENTRY = "workers.caw.train:run_job"
CHECKPOINT = "checkpoint.pt"
INPUT = "input.wav"
LOSSES = "losses.json"
LOSS_NAMES = ("d_real", "d_fake", "gp", "rec")
CHECKPOINT_EVERY_S = 60.0
REPORT_EVERY_S = 1.0
"""Losses are read from the device (a host sync on a GPU) at most this often."""
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Reporter(Protocol):
    """What training reports to: a job's context (workers/runtime/jobrun.py JobContext)."""

    should_stop: bool

    def progress(self, fraction: float, text: str = "") -> None: ...

    def log(self, text: str) -> None: ...


class TrainingError(ValueError):
    """Training cannot start or go on; the text says why."""


def start(folder: Path, input_path: Path, config: CAWConfig) -> None:
    """Lay out a new model folder: the per-scale signals and a manifest with no scale trained."""
    if (folder / MANIFEST).exists():
        raise TrainingError(f"{folder} already holds a CAW model; resume it or choose another folder")
    audio, sr = sf.read(input_path, dtype="float32", always_2d=True)
    scales = prepare(audio.mean(axis=1), int(sr), config)
    if config.seed is None:  # every run is seeded, so a resumed run makes what an uninterrupted one would
        config = replace(config, seed=int(np.random.default_rng().integers(0, 2 ** 31)))
    folder.mkdir(parents=True, exist_ok=True)
    for fs, signal in zip(scales.fs_list, scales.signals):
        write_wav(folder / f"real@{fs}Hz.wav", signal, fs)
    infos = [ScaleInfo(fs=f, length=len(s), channels=config.channels(k), noise_amp=0.0, energy=e)
             for k, (f, s, e) in enumerate(zip(scales.fs_list, scales.signals, scales.energies))]
    write_manifest(folder, config, scales.fs, scales.norm_factor, infos)


@dataclass
class ScaleRun:
    """The state of the scale being trained, as a checkpoint holds it."""

    netG: Generator
    netD: Discriminator
    optG: torch.optim.Adam
    optD: torch.optim.Adam
    rng: torch.Generator
    alpha: torch.Tensor
    """One gradient-penalty mix per epoch, drawn when the scale starts."""
    noise_amp: float
    rec_noise: torch.Tensor
    """The fixed reconstruction noise, padded and times ``noise_amp``."""
    epoch: int
    losses: torch.Tensor
    """(epochs, 4): d_real, d_fake, gp, rec per epoch."""
    seconds: float


class Trainer:
    """Trains the scales of the model in ``folder`` that are not done yet."""

    def __init__(self, folder: Path, device: str, report: Reporter) -> None:
        manifest = read_manifest(folder)
        self.folder, self.device, self.report = folder, device, report
        self.config = CAWConfig.from_dict(manifest["config"])
        self.fs, self.norm_factor = int(manifest["fs"]), float(manifest["norm_factor"])
        self.scales = [ScaleInfo.from_dict(s) for s in manifest["scales"]]
        self.signals = [sf.read(folder / f"real@{s.fs}Hz.wav", dtype="float32")[0] for s in self.scales]
        self.valid, self.holes = hole_layout(self.config, self.fs, [s.fs for s in self.scales],
                                             [s.length for s in self.scales])
        self.generators: list[Generator] = []
        self.rec_noise: list[torch.Tensor] = []
        self.cost = [s.length * s.channels ** 2 for s in self.scales]

    # -- the whole run ---------------------------------------------------------------------------
    def run(self) -> bool:
        """Train until every scale is done (True) or a stop was asked for (False)."""
        E = self.config.num_epochs
        if self.scales[0].epochs_done >= E:
            self.rec_noise = list(load_tensors(self.folder / NOISE_FILE)["noise"])
        for k, info in enumerate(self.scales):
            if info.epochs_done >= E:
                g = Generator.for_scale(self.config, k)
                g.load_state_dict(load_tensors(self.folder / f"generator{k}.pt"))
                self.generators.append(g.to(self.device).eval().requires_grad_(False))
                continue
            if not self.train_scale(k):
                return False
        return True

    def model_so_far(self) -> CAWModel:
        """The trained scales as a model (to draw the coarser scales' signals)."""
        k = len(self.generators)
        return CAWModel(self.config, self.fs, self.norm_factor, self.scales[:k], self.generators,
                        self.rec_noise, self.folder)

    # -- one scale ---------------------------------------------------------------------------------
    def train_scale(self, k: int) -> bool:
        cfg, dev, E = self.config, self.device, self.config.num_epochs
        real = torch.from_numpy(self.signals[k]).to(dev).reshape(1, 1, -1)
        n, pad = real.shape[-1], cfg.pad
        valid = torch.from_numpy(self.valid[k]).to(dev) if self.valid[k] is not None else None
        holes = self.holes[k]
        below = self.model_so_far()
        prev_rec = torch.zeros(1, 1, n, device=dev)
        if k > 0:
            out = run_scales(below, dev, below.lengths, lambda j, m: below.reconstruction_noise[j])[-1]
            prev_rec = upsample(out, below.fs_list[-1], self.scales[k].fs, n)
        prev_rec = F.pad(prev_rec, (pad, pad))
        state = self._resume_or_begin(k, n, prev_rec)
        netG, netD = state.netG, state.netD
        self.scales[k].noise_amp = state.noise_amp
        self.report.log(f"scale {k + 1} of {len(self.scales)}: {self.scales[k].fs} Hz, {n} samples, "
                        f"noise amp {state.noise_amp:.6f}" + (f", from epoch {state.epoch}" if state.epoch else ""))
        zeros = torch.zeros(1, 1, n + 2 * pad, device=dev)
        last_save = last_report = run_start = time.monotonic()
        epoch_start = state.epoch
        for epoch in range(state.epoch, E):
            began = time.monotonic()
            if self.report.should_stop:
                self._save_checkpoint(k, state)
                return False
            lr = cfg.learning_rate * (cfg.lr_decay if epoch >= cfg.milestone else 1.0)
            for opt in (state.optG, state.optD):
                for group in opt.param_groups:
                    group["lr"] = lr
            noise = F.pad(torch.randn(1, 1, n, generator=state.rng, device=dev), (pad, pad)) * state.noise_amp
            prev = zeros if k == 0 else F.pad(
                upsample(run_scales(below, dev, below.lengths, fresh_noise(below, dev, state.rng))[-1],
                         below.fs_list[-1], self.scales[k].fs, n), (pad, pad))
            # discriminator: real up, generated down, gradient penalty
            state.optD.zero_grad(set_to_none=True)
            d_real = netD(real, holes).mean()
            (-d_real).backward()
            with torch.no_grad(), unchanged_statistics(netG):
                fake = netG(noise + prev, prev)
            d_fake = netD(fake, holes).mean()
            d_fake.backward()
            gp = gradient_penalty(cfg, netD, real, fake, state.alpha[epoch], holes)
            gp.backward()
            state.optD.step()
            # generator: fool the updated discriminator, and rebuild the clip from the fixed noise.
            # The discriminator's gradient at the generated signal first, then the generator's graph:
            # the two graphs are never held at once (a 25 s clip at 16 kHz: gigabytes each).
            state.optG.zero_grad(set_to_none=True)
            netD.requires_grad_(False)
            fake.requires_grad_(True)
            toward_real, = torch.autograd.grad(-netD(fake, holes).mean(), fake)
            netD.requires_grad_(True)
            netG(noise + prev, prev).backward(toward_real)
            rec = netG(state.rec_noise + prev_rec, prev_rec)
            rec_loss = reconstruction_loss(cfg, real, rec, valid)
            rec_loss.backward()
            state.optG.step()
            state.losses[epoch] = torch.stack([d_real, d_fake, gp, rec_loss]).detach()
            state.epoch = epoch + 1
            now = time.monotonic()
            state.seconds += now - began
            if now - last_report >= REPORT_EVERY_S or state.epoch == E:
                self._progress(k, state, (now - run_start) / (state.epoch - epoch_start))
                last_report = now
            if now - last_save >= CHECKPOINT_EVERY_S:
                self._save_checkpoint(k, state)
                last_save = now
        self._finish_scale(k, state, prev_rec)
        return True

    def _resume_or_begin(self, k: int, n: int, prev_rec: torch.Tensor) -> ScaleRun:
        cfg, dev = self.config, self.device
        path = self.folder / CHECKPOINT
        seed = int(cfg.seed or 0) * 1000 + k
        torch.manual_seed(seed)  # weight initialisation
        netG = Generator.for_scale(cfg, k).to(dev)
        netD = Discriminator.for_scale(cfg, k).to(dev)
        optG = torch.optim.Adam(netG.parameters(), lr=cfg.learning_rate, betas=(cfg.beta1, 0.999))
        optD = torch.optim.Adam(netD.parameters(), lr=cfg.learning_rate, betas=(cfg.beta1, 0.999))
        rng = torch.Generator(device=dev)
        saved = load_tensors(path) if path.exists() else None
        if saved is not None and int(saved["scale"]) == k:
            netG.load_state_dict(saved["G"])
            netD.load_state_dict(saved["D"])
            optG.load_state_dict(saved["optG"])
            optD.load_state_dict(saved["optD"])
            rng.set_state(saved["rng"])
            losses = torch.zeros(cfg.num_epochs, len(LOSS_NAMES), device=dev)
            losses[:int(saved["epoch"])] = saved["losses"].to(dev)
            return ScaleRun(netG, netD, optG, optD, rng, saved["alpha"].to(dev), float(saved["noise_amp"]),
                            saved["rec_noise"].to(dev), int(saved["epoch"]), losses, float(saved["seconds"]))
        if k >= 2:  # scale 1 has other channel counts than scale 0: it starts fresh
            netG.load_state_dict(load_tensors(self.folder / f"generator{k - 1}.pt"))
            netD.load_state_dict(load_tensors(self.folder / f"discriminator{k - 1}.pt"))
        rng.manual_seed(seed)
        alpha = torch.rand(cfg.num_epochs, generator=rng, device=dev)
        if k == 0:
            noise = torch.randn(1, 1, n, generator=rng, device=dev)
            amp = cfg.initial_noise_amp
        else:
            noise = torch.zeros(1, 1, n, device=dev)
            if self.valid[k] is not None:  # inpainting: the holes get noise at every scale
                hole = torch.from_numpy(~self.valid[k]).to(dev)
                noise[..., hole] = torch.randn(int(hole.sum()), generator=rng, device=dev)
            energies = [s.energy for s in self.scales]
            amp = cfg.noise_amp_factor * max(0.0, energies[k] - energies[k - 1]) ** 0.5
            if k == 1 and cfg.add_cond_noise:
                amp = float(prev_rec.std())
        rec_noise = F.pad(noise, (cfg.pad, cfg.pad)) * amp
        return ScaleRun(netG, netD, optG, optD, rng, alpha, amp, rec_noise, 0,
                        torch.zeros(cfg.num_epochs, len(LOSS_NAMES), device=dev), 0.0)

    def _save_checkpoint(self, k: int, state: ScaleRun) -> None:
        save_tensors(self.folder / CHECKPOINT, {
            "scale": k, "epoch": state.epoch, "G": state.netG.state_dict(), "D": state.netD.state_dict(),
            "optG": state.optG.state_dict(), "optD": state.optD.state_dict(), "rng": state.rng.get_state(),
            "alpha": state.alpha.cpu(), "noise_amp": state.noise_amp, "rec_noise": state.rec_noise.cpu(),
            "losses": state.losses[:state.epoch].cpu(), "seconds": state.seconds})
        self.report.log(f"checkpoint: scale {k + 1}, epoch {state.epoch}")

    def _progress(self, k: int, state: ScaleRun, seconds_per_epoch: float) -> None:
        E, total = self.config.num_epochs, sum(self.cost)
        done = sum(self.cost[:k]) + self.cost[k] * state.epoch / E
        left = seconds_per_epoch * (E - state.epoch) + sum(
            seconds_per_epoch * E * self.cost[j] / self.cost[k] for j in range(k + 1, len(self.scales)))
        d_real, d_fake, gp, rec = state.losses[state.epoch - 1].tolist()
        self.report.progress(done / total, f"scale {k + 1} of {len(self.scales)} ({self.scales[k].fs} Hz) epoch "
                             f"{state.epoch}/{E} D(real) {d_real:.3f} D(fake) {d_fake:.3f} gp {gp:.4f} rec "
                             f"{rec:.4f} {format_duration(left)} left")

    def _finish_scale(self, k: int, state: ScaleRun, prev_rec: torch.Tensor) -> None:
        """Save the scale's networks and outputs, plot its losses, mark it done."""
        folder, fs = self.folder, self.scales[k].fs
        netG = state.netG.eval().requires_grad_(False)
        save_tensors(folder / f"generator{k}.pt", netG.state_dict())
        save_tensors(folder / f"discriminator{k}.pt", state.netD.state_dict())
        self.generators.append(netG)
        self.rec_noise.append(state.rec_noise)
        save_tensors(folder / NOISE_FILE, {"noise": [t.cpu() for t in self.rec_noise]})
        frozen = FrozenGenerator(netG)
        write_wav(folder / f"reconstructed@{fs}Hz.wav",
                  frozen(state.rec_noise + prev_rec, prev_rec).reshape(-1).cpu().numpy(), fs)
        model = self.model_so_far()
        fake = run_scales(model, self.device, model.lengths, fresh_noise(model, self.device, state.rng))[-1]
        write_wav(folder / f"fake@{fs}Hz.wav", fake.reshape(-1).cpu().numpy(), fs)
        curves = {name: state.losses[:, i].cpu().tolist() for i, name in enumerate(LOSS_NAMES)}
        history = json.loads((folder / LOSSES).read_text()) if (folder / LOSSES).exists() else {}
        history[str(fs)] = curves
        (folder / LOSSES).write_text(json.dumps(history))
        plot_losses(folder / f"losses@{fs}Hz.png", f"CAW scale {k + 1} of {len(self.scales)} ({fs} Hz)", curves)
        info = self.scales[k]
        info.epochs_done, info.seconds = self.config.num_epochs, state.seconds
        info.losses = {name: curves[name][-1] for name in LOSS_NAMES}
        write_manifest(folder, self.config, self.fs, self.norm_factor, self.scales)
        (folder / CHECKPOINT).unlink(missing_ok=True)
        self.report.log(f"scale {k + 1} done in {format_duration(state.seconds)}: " +
                        ", ".join(f"{name} {value:.4f}" for name, value in info.losses.items()))


@contextmanager
def unchanged_statistics(net: torch.nn.Module) -> Iterator[None]:
    """Run ``net`` in training mode without moving its BatchNorm running statistics: a forward
    pass only to see its output, which the update step repeats with a graph (the statistics then
    move once per pass, as if the output had been kept)."""
    buffers = [b for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d) for b in m.buffers()]
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        for b, v in zip(buffers, saved):
            b.copy_(v)


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def default_threads() -> int:
    """All cores but one: the one left keeps Pd's audio (and the rest of the machine) responsive.
    OpenMP threads that must wait for a busy core slow every step down many times over."""
    return max(1, (os.cpu_count() or 2) - 1)


def train(folder: Path, device: str, report: Reporter, threads: Optional[int] = None) -> bool:
    """Train the model in ``folder`` (laid out by :func:`start`) to the end or to a stop."""
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for, but torch sees no CUDA GPU here")
    torch.set_num_threads(threads or default_threads())
    torch.set_flush_denormal(True)  # tiny noise amplitudes make denormal floats, several times slower
    return Trainer(folder, device, report).run()


def run_job(job: Any) -> None:
    """The job entry (``workers.caw.train:run_job``): ``job.config`` holds ``input`` (a sound file),
    ``config`` (CAWConfig as a dict), ``device`` and ``threads``; the model folder is ``job.output``."""
    folder = Path(job.output)
    if not (job.resume and (folder / MANIFEST).exists()):
        start(folder, Path(job.config["input"]), CAWConfig.from_dict(job.config["config"]))
    if train(folder, str(job.config.get("device", "cpu")), job, job.config.get("threads")):
        manifest = read_manifest(folder)
        job.result(model_dir=str(folder), scales=len(manifest["scales"]),
                   epochs=[s["epochs_done"] for s in manifest["scales"]])
        job.progress(1.0, f"done: {len(manifest['scales'])} scales in {folder}")


# -- the command line -----------------------------------------------------------------------------
def add_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS), help="quick (default) or paper")
    p.add_argument("--epochs", type=int, help="epochs per scale (quick 200, paper 2000)")
    p.add_argument("--run_mode", default="normal", choices=RUN_MODES)
    p.add_argument("--inpainting_indices", type=int, nargs="+", default=[],
                   help="holes as start end [start end ...] in samples at the model's rate (inpainting)")
    p.add_argument("--speech", action="store_true", help="speech: L2 reconstruction loss, scales from 500 Hz")
    p.add_argument("--model_sr", type=int, help="the model's rate (quick 8000, paper 16000)")
    p.add_argument("--seconds", type=float, help="use at most this much of the clip (quick 8, paper 25)")
    p.add_argument("--channels", type=int, help="channels of every scale but the first (quick 32, paper 96)")
    p.add_argument("--layers", type=int, help="layers per network (8)")
    p.add_argument("--seed", type=int, help="random seed (default: a new one, stored with the model)")


def config_from(preset_name: str, epochs: Optional[int] = None, run_mode: str = "normal",
                inpainting_indices: Sequence[int] = (), speech: bool = False, model_sr: Optional[int] = None,
                seconds: Optional[float] = None, channels: Optional[int] = None, layers: Optional[int] = None,
                seed: Optional[int] = None) -> CAWConfig:
    """The training settings a ``train`` message or command line asks for."""
    if len(inpainting_indices) % 2:
        raise ConfigError("--inpainting_indices needs pairs: start end [start end ...]")
    base = PRESETS.get(preset_name, {})
    init = base.get("hidden_channels_init", CAWConfig.hidden_channels_init)
    factor = None
    if channels is not None:
        if channels % init:
            raise ConfigError(f"--channels must be a multiple of {init} (the first scale's channels)")
        factor = channels // init
    holes = tuple(zip(inpainting_indices[0::2], inpainting_indices[1::2]))
    return preset(preset_name, num_epochs=epochs, run_mode=run_mode, holes=holes or None, speech=speech,
                  sample_rate=model_sr, max_seconds=seconds, channels_factor=factor, num_layers=layers, seed=seed)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from workers.runtime.jobs import run_in_foreground

    p = argparse.ArgumentParser(prog="pdbridge train caw", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="the clip: a sound file (mono or mixed down), ideally 20-25 s")
    p.add_argument("model_dir", type=Path, help="a new folder for the model (or one whose training stopped)")
    add_training_options(p)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores but one)")
    p.add_argument("--detach", action="store_true", help="run in the background; follow with pdbridge jobs")
    args = p.parse_args(argv)
    here = Path(os.environ.get("PDBRIDGE_CWD") or os.getcwd())  # pdbridge train runs us from the checkout
    model_dir, data = (here / args.model_dir).resolve(), (here / args.data).resolve()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        job = _job_for(model_dir, data, device, args)
    except (ConfigError, TrainingError, ModelFolderError, JobError, sf.LibsndfileError) as exc:
        print(f"pdbridge train caw: {exc}", file=sys.stderr)
        return 2
    if args.detach:
        job.launch(sys.executable, os.environ, PROJECT_ROOT, resume=(model_dir / MANIFEST).exists())
        print(f"started {job.id} in the background: pdbridge jobs show {job.id}")
        return 0
    return run_in_foreground(job, sys.executable, os.environ, PROJECT_ROOT, resume=(model_dir / MANIFEST).exists())


def _job_for(model_dir: Path, data: Path, device: str, args: argparse.Namespace) -> JobFolder:
    """The job that trains ``model_dir``: its unfinished one (to resume), or a new one."""
    if (model_dir / MANIFEST).exists():
        manifest = read_manifest(model_dir)
        epochs = CAWConfig.from_dict(manifest["config"]).num_epochs
        if all(s["epochs_done"] >= epochs for s in manifest["scales"]):
            raise TrainingError(f"{model_dir} is already trained; choose a new folder to train again")
        return JobFolder.find(jobs_root(), str(model_dir))
    if model_dir.exists() and any(model_dir.iterdir()):
        raise TrainingError(f"{model_dir} is not empty: choose a new folder for the model")
    config = config_from(args.preset, args.epochs, args.run_mode, args.inpainting_indices, args.speech,
                         args.model_sr, args.seconds, args.channels, args.layers, args.seed)
    audio, sr = sf.read(data, dtype="float32", always_2d=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    write_wav(model_dir / INPUT, audio.mean(axis=1)[:int(config.max_seconds * sr)], sr)
    return JobFolder.create(jobs_root(), "caw", "train", ENTRY, {"input": str(model_dir / INPUT),
                            "config": config.to_dict(), "device": device, "threads": args.threads},
                           output=model_dir)


if __name__ == "__main__":
    sys.exit(main())
