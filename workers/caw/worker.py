"""Protocol glue for the CAW worker (messages documented in docs/models/caw.md).

``train`` starts a job (train.py) and answers at once; ``status``, ``stop`` and ``resume`` follow
it. ``load`` reads a model folder (ours or the original code's), and the generating messages turn
Pd arrays into the model's domain (its rate, divided by the training clip's peak) and back.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import soundfile as sf
import torch

from workers.runtime import PdError, Request, Worker, integer, number, sample_rate, symbol
from workers.runtime.cache import path_key
from workers.runtime.device import torch_cuda_available
from workers.runtime.jobs import register_job_messages, start_job
from workers.runtime.resample import resample

from . import generate as gen
from .config import RUN_MODES, ConfigError
from .folder import MANIFEST, CAWModel, ModelFolderError, load_model, write_wav
from .train import ENTRY, INPUT, TrainingError, config_from

worker = Worker("caw", cuda_available=torch_cuda_available,
                user_errors=(ConfigError, ModelFolderError, TrainingError, gen.GenerationError),
                load_hint="load <model folder>")
register_job_messages(worker)
torch.set_flush_denormal(True)  # tiny noise amplitudes make denormal floats, several times slower

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3")
MAX_SECONDS = 600.0
MAX_VARIATIONS = 64
TRAIN_OPTIONS = {"preset", "epochs", "run_mode", "inpainting_indices", "speech", "device", "sr", "model_sr",
                 "seconds", "channels", "layers", "seed", "threads"}


def _model(req: Request) -> CAWModel:
    return req.loaded("model")


def _progress(req: Request) -> Callable[[float], None]:
    started = time.monotonic()

    def report(fraction: float) -> None:
        elapsed = time.monotonic() - started
        req.progress(fraction, f"{elapsed / fraction * (1 - fraction):.0f} s left" if fraction > 0 else "")

    return report


def _input(req: Request, name: str, model: CAWModel, sr: int) -> np.ndarray:
    """A Pd array at ``sr`` in the model's domain (the model's rate, over the clip's peak)."""
    samples = req.read_array(name)
    if not len(samples):
        raise PdError(f"array {name} is empty")
    return resample(samples, sr, model.fs) / model.norm_factor if sr != model.fs else samples / model.norm_factor


def _output(req: Request, name: str, signal: np.ndarray, model: CAWModel, sr: int) -> int:
    """Stage a model-domain signal for Pd array ``name`` at ``sr``; returns its length."""
    out = signal * model.norm_factor
    if sr != model.fs:
        out = resample(out, model.fs, sr)
    req.write_array(name, out, sr)
    return len(out)


def _rates(req: Request, model: CAWModel) -> tuple[int, int]:
    """``--sr`` (your arrays' rate, default the model's) and ``--in_sr`` (an input's, default --sr)."""
    opts = req.options()
    sr = opts.get("sr", sample_rate, model.fs)
    return sr, opts.get("in_sr", sample_rate, sr)


@worker.message("train <array-or-file> <model_dir> [--preset quick|paper] [--epochs N] [--run_mode normal|inpainting|"
                "denoising] [--inpainting_indices s e ...] [--speech] [--device cpu|cuda] [--sr N] [--model_sr N] "
                "[--seconds S] [--channels N] [--layers N] [--seed N] [--threads N]",
                help="start training a new model folder on a clip (a Pd array at --sr, default 44100, or a sound "
                     "file); replies started <job> at once, then job lines follow on the right outlet",
                timeout=120, reads="0")
def train(req: Request) -> None:
    opts = req.options(known=TRAIN_OPTIONS)
    if len(opts.positional) != 2:
        raise req.usage("train needs a clip and a model folder")
    source, folder = symbol(opts.positional[0], "clip"), req.resolve_path(opts.positional[1])
    if (folder / MANIFEST).exists():
        raise PdError(f"{folder} already holds a CAW model: resume {folder} goes on with its training, "
                      "or choose a new folder")
    if folder.exists() and any(folder.iterdir()):
        raise PdError(f"{folder} is not empty: choose a new folder for the model")
    run_mode = opts.get("run_mode", symbol, "normal")
    if run_mode not in RUN_MODES:
        raise PdError(f"--run_mode must be one of {', '.join(RUN_MODES)}")
    device = opts.get("device", symbol, req.device)
    if device not in ("cpu", "cuda"):
        raise PdError("--device must be cpu or cuda")
    config = config_from(opts.get("preset", symbol, "quick"), opts.get("epochs", integer, None), run_mode,
                         [integer(v, "--inpainting_indices") for v in opts.values("inpainting_indices")],
                         opts.has("speech"), opts.get("model_sr", sample_rate, None), opts.get("seconds", number, None),
                         opts.get("channels", integer, None), opts.get("layers", integer, None),
                         opts.get("seed", integer, None))
    if source.lower().endswith(AUDIO_SUFFIXES) or "/" in source:
        path = req.existing_path(source, "sound file")
        try:
            audio, sr = sf.read(path, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise PdError(f"{path} is not a sound file pdbridge can read ({exc})") from exc
        clip = audio.mean(axis=1)
    else:
        clip, sr = req.read_array(source), opts.get("sr", sample_rate, 44100)
    if not np.any(clip):
        raise PdError(f"{source} is silent: CAW needs a sound to learn")
    folder.mkdir(parents=True, exist_ok=True)
    write_wav(folder / INPUT, clip[:int(config.max_seconds * sr)], int(sr))
    job = start_job(req, "train", ENTRY, {"input": str(folder / INPUT), "config": config.to_dict(), "device": device,
                                          "threads": opts.get("threads", integer, None)}, output=folder)
    req.reply("started", job.id)


@worker.message("load <model_dir>", help="a model folder written by pdbridge or by the original CAW code; replies "
                "loaded <scales> <sr> <seconds of the training clip>", timeout=300)
def load(req: Request) -> None:
    if len(req.args) != 1:
        raise req.usage()
    path = req.existing_path(req.args[0], "model folder")
    # a folder still being trained changes its key as scales are added
    model = worker.cache.get_or_make(("caw", path_key(path), req.device), lambda: load_model(path, req.device),
                                     nbytes=model_bytes)
    req.state["model"] = model
    req.reply("loaded", len(model.scales), model.fs, round(model.lengths[-1] / model.fs, 3))


@worker.message("info", help="the loaded model: folder, kind, rate, scales, epochs, run mode", timeout=10)
def info(req: Request) -> None:
    model = _model(req)
    req.reply("folder", str(model.folder))
    req.reply("kind", model.kind)
    req.reply("sr", model.fs)
    req.reply("scales", *model.fs_list)
    req.reply("noise_amps", *[round(a, 6) for a in model.noise_amps])
    req.reply("channels", *[s.channels for s in model.scales])
    req.reply("epochs", model.config.num_epochs)
    req.reply("run_mode", model.config.run_mode, *(["speech"] if model.config.speech else []))
    req.reply("seconds", round(model.lengths[-1] / model.fs, 3))
    if model.config.holes:
        req.reply("holes", *[round(v / model.fs, 4) for hole in model.config.holes for v in hole])


@worker.message("generate <out> [<out2> ...] [--n N] [--length S] [--seed K] [--sr N]",
                help="new variations, one per array (or N into <out>-0 ... <out>-(N-1)); replies generated <array> "
                     "<samples> <sr> for each", timeout=None, writes="0: 0-*")
def generate(req: Request) -> None:
    model = _model(req)
    opts = req.options(known={"n", "length", "seed", "sr"})
    if not opts.positional:
        raise req.usage()
    outs = [symbol(a, "array") for a in opts.positional]
    n = opts.get("n", integer, len(outs))
    if len(outs) == 1 and n > 1:
        outs = [f"{outs[0]}-{i}" for i in range(n)]
    elif n != len(outs):
        raise PdError(f"--n {n} does not match the {len(outs)} arrays given (give one array and --n, or N arrays)")
    if not 1 <= len(outs) <= MAX_VARIATIONS:
        raise PdError(f"generate makes 1..{MAX_VARIATIONS} variations at a time")
    seconds = opts.get("length", number, model.lengths[-1] / model.fs)
    if not 0 < seconds <= MAX_SECONDS:
        raise PdError(f"--length must be more than 0 and at most {MAX_SECONDS:g} seconds")
    sr = opts.get("sr", sample_rate, model.fs)
    seed = opts.get("seed", integer, None)
    req.check_arrays(outs)
    rng = gen.generator_for(seed)
    progress = _progress(req)
    signals = [gen.variation(model, req.device, seconds, rng, lambda f, i=i: progress((i + f) / len(outs)))
               for i in range(len(outs))]
    lengths = [_output(req, name, signal, model, sr) for name, signal in zip(outs, signals)]
    for name, length in zip(outs, lengths):
        req.reply("generated", name, length, sr)


@worker.message("reconstruct <out> [--sr N]", help="the training clip rebuilt from the fixed noise (how well the "
                "model learnt it); replies reconstructed <out> <samples> <sr>", timeout=None, writes="0")
def reconstruct(req: Request) -> None:
    model = _model(req)
    opts = req.options(known={"sr"})
    if len(opts.positional) != 1:
        raise req.usage()
    out, sr = symbol(opts.positional[0], "array"), opts.get("sr", sample_rate, model.fs)
    req.check_arrays([out])
    signal = gen.reconstruct(model, req.device, progress=_progress(req))[-1]
    req.reply("reconstructed", out, _output(req, out, signal, model, sr), sr)


def _in_out(req: Request, known: set[str], extra: int = 0) -> tuple[str, str, list[float]]:
    opts = req.options(known=known)
    if len(opts.positional) < 2 or (not extra and len(opts.positional) != 2):
        raise req.usage()
    return (symbol(opts.positional[0], "input array"), symbol(opts.positional[1], "output array"),
            [number(v, "region") for v in opts.positional[2:]])


@worker.message("condition <coarse_in> <out> [--keep_hz F] [--in_sr N] [--seed K] [--sr N]",
                help="a variation that keeps the input's content below F Hz (default: the coarsest scale's rate); "
                     "replies conditioned <out> <samples> <sr>", timeout=None, reads="0", writes="1")
def condition(req: Request) -> None:
    model = _model(req)
    src, out, _ = _in_out(req, {"keep_hz", "in_sr", "seed", "sr"})
    sr, in_sr = _rates(req, model)
    opts = req.options()
    keep = opts.get("keep_hz", number, float(model.fs_list[0]))
    if not 0 < keep < model.fs:
        raise PdError(f"--keep_hz must be between 0 and the model's rate ({model.fs} Hz)")
    req.check_arrays([out])
    signal = gen.condition(model, req.device, _input(req, src, model, in_sr), model.fs, keep,
                           gen.generator_for(opts.get("seed", integer, None)), _progress(req))
    req.reply("conditioned", out, _output(req, out, signal, model, sr), sr)


@worker.message("extend <in> <out> --in_sr N [--seed K] [--sr N]",
                help="bandwidth extension: the input (at N Hz, below the model's rate) keeps its band, the model "
                     "adds the band above N/2; replies extended <out> <samples> <sr>", timeout=None, reads="0",
                writes="1")
def extend(req: Request) -> None:
    model = _model(req)
    src, out, _ = _in_out(req, {"in_sr", "seed", "sr"})
    opts = req.options()
    if not opts.has("in_sr"):
        raise req.usage("extend needs --in_sr, the rate of the low-rate input")
    in_sr, sr = opts.get("in_sr", sample_rate), opts.get("sr", sample_rate, model.fs)
    if in_sr >= model.fs:
        raise PdError(f"extend: --in_sr {in_sr} is not below the model's rate ({model.fs} Hz): nothing to add")
    req.check_arrays([out])
    low = req.read_array(src) / model.norm_factor
    signal = gen.extend(model, req.device, low, in_sr, gen.generator_for(opts.get("seed", integer, None)),
                        _progress(req))
    req.reply("extended", out, _output(req, out, signal, model, sr), sr)


@worker.message("inpaint <in> <out> [<start_s> <end_s> ...] [--in_sr N] [--seed K] [--sr N]",
                help="fill regions (seconds; default: the holes the model was trained with) of the training clip "
                     "with new material; replies inpainted <out> <samples> <sr>", timeout=None, reads="0", writes="1")
def inpaint(req: Request) -> None:
    model = _model(req)
    src, out, spans = _in_out(req, {"in_sr", "seed", "sr"}, extra=1)
    sr, in_sr = _rates(req, model)
    opts = req.options()
    if spans:
        holes = gen.seconds_to_holes(model, spans)
    elif model.config.holes:
        holes = list(model.config.holes)
    else:
        raise PdError("inpaint needs a region: <start_s> <end_s> (this model was not trained with holes)")
    trained = sorted(holes) == sorted(model.config.holes) and not opts.has("seed")
    req.check_arrays([out])
    clip = _input(req, src, model, in_sr)[:model.lengths[-1]]
    signal = gen.inpaint(model, req.device, clip, holes,
                         None if trained else gen.generator_for(opts.get("seed", integer, None)), _progress(req))
    req.reply("inpainted", out, _output(req, out, signal, model, sr), sr)


@worker.message("denoise <in> <out> [--in_sr N] [--sr N]",
                help="the input's coarsest band rebuilt through the finer scales without noise (train with "
                     "--run_mode denoising on the noisy clip); replies denoised <out> <samples> <sr>", timeout=None,
                reads="0", writes="1")
def denoise(req: Request) -> None:
    model = _model(req)
    src, out, _ = _in_out(req, {"in_sr", "sr"})
    sr, in_sr = _rates(req, model)
    req.check_arrays([out])
    signal = gen.condition(model, req.device, _input(req, src, model, in_sr), model.fs, float(model.fs_list[0]),
                           None, _progress(req))
    req.reply("denoised", out, _output(req, out, signal, model, sr), sr)


def model_bytes(model: CAWModel) -> int:
    """What a loaded model counts for in the worker's cache: its generators' weights, twice (the
    folded inference copies), plus the reconstruction noise."""
    weights = sum(p.numel() * p.element_size() for g in model.generators for p in g.parameters())
    return 2 * weights + sum(t.numel() * t.element_size() for t in model.reconstruction_noise)


if __name__ == "__main__":
    worker.run()
