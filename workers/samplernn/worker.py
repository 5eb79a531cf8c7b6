"""Protocol glue for the SampleRNN worker (messages documented in docs/models/samplernn.md).

The vocabulary is the course's: ``load -- --num_seqs 2 --ckpt_dir DIR [--config FILE]`` then
``generate --out_sr 16000 --dur 4 --temp 1 --out sound1 --temp Env([..]\\,[..]\\,[..]) --out sound2``,
answered by one ``generated <array> <sr> <samples>`` per output. Model code is in model.py and
generate.py; this file turns messages into calls on it.
"""
from __future__ import annotations

import time
from typing import Union

import numpy as np
import torch

from workers.runtime import Env, PdError, Request, Worker, integer, number, number_or_env, sample_rate, symbol
from workers.runtime.checkpoints import find_checkpoint
from workers.runtime.device import torch_cuda_available
from workers.runtime.resample import resample

from .checkpoint import LoadedModel, resolve_model
from .generate import Sampler, generate_audio, output_length, temperature_matrix

worker = Worker("samplernn", cuda_available=torch_cuda_available,
                user_errors=(ValueError,),  # checkpoint, config and PRiSM import errors are ValueErrors
                load_hint="load -- --ckpt_dir <folder>")

MAX_SECONDS = 600.0
MAX_SEED_SECONDS = 30.0
# --python is the course's interpreter path for its pyext loader; accepted so course patches load
# unchanged, and ignored: the hub picks the environment (environment/workers.toml).
LOAD_OPTIONS = {"ckpt_dir", "num_seqs", "config", "precision", "threads", "python"}
GENERATE_OPTIONS = {"out_sr", "dur", "temp", "out", "seed", "seed_sr", "rng_seed"}


def _loaded(req: Request) -> tuple[LoadedModel, Sampler]:
    return req.loaded("model"), req.loaded("sampler")


@worker.message("load -- --ckpt_dir DIR [--num_seqs N] [--config FILE] [--precision auto|fp32|int8] [--threads 1]",
                help="a pdbridge or PRiSM SampleRNN checkpoint; replies loaded <num_seqs> <sr>", timeout=600)
def load(req: Request) -> None:
    opts = req.options(known=LOAD_OPTIONS)
    ckpt = find_checkpoint(req, opts.require("ckpt_dir", symbol), "checkpoint folder")
    config = opts.get("config", symbol, None)
    config_path = req.existing_path(config, "config file") if config is not None else None
    num_seqs = opts.get("num_seqs", integer, 1)
    if num_seqs < 1:
        raise PdError("--num_seqs must be at least 1")
    precision = opts.get("precision", symbol, "auto")
    if precision not in ("auto", "fp32", "int8"):
        raise PdError("--precision must be auto, fp32 or int8")
    if precision == "auto":
        precision = "fp32" if req.device == "cuda" else "int8"
    if precision == "int8" and req.device == "cuda":
        raise PdError("--precision int8 runs on the CPU only; use fp32 (or auto) on a GPU")
    threads = opts.get("threads", integer, 1)
    if threads < 1:
        raise PdError("--threads must be at least 1")
    # One thread by default: generation is limited by memory bandwidth, and a second busy core would
    # take the one Pd's audio runs on (on a shared 2-core machine, 2 threads measured 4x slower).
    torch.set_num_threads(threads)
    loaded = resolve_model(ckpt, config_path)
    loaded.model.to(req.device)
    sampler = Sampler(loaded.model, precision)
    req.state.clear()  # only now: a failed load leaves the previous model in place
    req.state.update(model=loaded, sampler=sampler)
    req.reply("loaded", num_seqs, loaded.config.sample_rate)


@worker.message("info", help="the loaded model's checkpoint, config and precision, one line each", timeout=10)
def info(req: Request) -> None:
    loaded, sampler = _loaded(req)
    req.reply("checkpoint", loaded.kind, loaded.source)
    for key, value in loaded.config.to_dict().items():
        req.reply("config", key, *(value if isinstance(value, list) else [str(value) if isinstance(value, bool) else value]))
    req.reply("precision", sampler.precision)
    req.reply("device", str(sampler.device))


@worker.message("generate [--out_sr SR] [--dur SECONDS] --temp T --out ARRAY [--temp T2 --out ARRAY2 ...] "
                "[--seed ARRAY --seed_sr SR] [--rng_seed N]", help="replies generated <array> <sr> <samples> per --out",
                timeout=None, reads="--seed", writes="--out")
def generate(req: Request) -> None:
    opts = req.options(known=GENERATE_OPTIONS)
    loaded, sampler = _loaded(req)
    outs = opts.get_all("out", symbol)
    temps: list[Union[float, Env]] = opts.get_all("temp", number_or_env)
    if not outs:
        raise PdError("generate needs at least one --out <array> (with its --temp)")
    if len(temps) != len(outs):
        raise PdError(f"give one --temp per --out: got {len(temps)} --temp and {len(outs)} --out "
                      "(e.g. --temp 0.9 --out sound1 --temp 1 --out sound2)")
    model_sr = loaded.config.sample_rate
    out_sr = opts.get("out_sr", sample_rate, model_sr)
    if loaded.kind == "prism" and "out_sr" in {k for k, _ in opts.occurrences}:
        # PRiSM checkpoints do not record their rate: as in the course, the model runs at --out_sr.
        model_sr = out_sr
    dur = opts.get("dur", number, 10.0)
    if not 0 < dur <= MAX_SECONDS:
        raise PdError(f"--dur must be between 0 and {MAX_SECONDS:g} seconds")
    n = output_length(dur, model_sr, loaded.config.big_frame_size)
    if n == 0:
        raise PdError(f"--dur {dur:g} is too short: at least {2 * loaded.config.big_frame_size / model_sr:.3f} s")
    rng_seed = opts.get("rng_seed", integer, None)
    req.check_arrays(outs)
    seed_audio = None
    if opts.has("seed"):
        seed = req.read_array(opts.require("seed", symbol))
        seed_sr = opts.get("seed_sr", sample_rate, out_sr)
        seed = resample(seed[-int(MAX_SEED_SECONDS * seed_sr):], seed_sr, model_sr)
        if len(seed) < loaded.config.big_frame_size:
            raise PdError(f"the seed array is too short: at least {loaded.config.big_frame_size} samples "
                          f"at {model_sr} Hz are needed")
        seed_audio = [seed] * len(outs)
    temperature = temperature_matrix(temps, n, model_sr)
    started = time.monotonic()

    def progress(fraction: float) -> None:
        elapsed = time.monotonic() - started
        left = elapsed / fraction * (1 - fraction) if fraction > 0 else 0.0
        req.progress(fraction, f"{left:.0f} s left")

    with torch.inference_mode():
        audio = generate_audio(sampler, n, temperature, seed_audio, rng_seed, progress)
    if out_sr != model_sr:
        audio = np.stack([resample(a, model_sr, out_sr) for a in audio])
    for name, samples in zip(outs, audio):
        req.write_array(name, samples, out_sr)
    for name, samples in zip(outs, audio):
        req.reply("generated", name, out_sr, len(samples))


if __name__ == "__main__":
    worker.run()
