"""Protocol glue for the RAVE worker (messages documented in docs/models/rave.md).

Model code is in :mod:`workers.rave.model`; this file turns Pd messages into calls on it and its
results into Pd arrays. Latent arrays are named ``<prefix>-0``, ``<prefix>-1``, ... one per latent
dimension, so a patch can draw each trajectory in its own graph.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from workers.runtime import Options, PdError, Request, Worker, integer, number, sample_rate, symbol
from workers.runtime.args import Value
from workers.runtime.checkpoints import find_checkpoint
from workers.runtime.device import torch_cuda_available

from .model import LatentEdits, RaveExportError, RaveModel

worker = Worker("rave", cuda_available=torch_cuda_available, user_errors=(ValueError, RaveExportError),
                load_hint="load <file.ts>")

RUN_OPTIONS = {"sr", "seed", "bias", "scale"}
MAX_SECONDS = 600.0


def _pairs(values: Sequence[Value], what: str) -> dict[int, float]:
    """``0 0.5 3 -1``: pairs of (latent dimension, value), later pairs winning."""
    if len(values) % 2:
        raise PdError(f"{what} takes pairs: a latent dimension then a value, e.g. {what} 0 0.5 3 -1")
    return {integer(d, f"{what} dimension"): number(v, f"{what} value") for d, v in zip(values[::2], values[1::2])}


def _edits(req: Request, opts: Options, model: RaveModel) -> LatentEdits:
    """The object's stored edits (bias/scale messages) with this request's options on top."""
    edits = req.state.get("edits", LatentEdits()).updated(
        LatentEdits(_pairs(opts.values("bias"), "--bias"), _pairs(opts.values("scale"), "--scale")))
    edits.check(model.latent_size)
    return edits


def _rate(opts: Options) -> Optional[int]:
    return opts.get("sr", sample_rate, None)


def _latent_names(prefix: str, model: RaveModel) -> list[str]:
    return [f"{prefix}-{d}" for d in range(model.latent_size)]


def _check_latents(req: Request, prefix: str, model: RaveModel) -> list[str]:
    names = _latent_names(prefix, model)
    try:
        req.check_arrays(names)
    except PdError as exc:
        raise PdError(f"{exc} (this model has {model.latent_size} latent dimensions: "
                      f"arrays {names[0]} to {names[-1]} are needed)") from exc
    return names


def _positional(req: Request, opts: Options, count: int) -> list[str]:
    if len(opts.positional) < count:
        raise req.usage()
    return [symbol(v, "array name") for v in opts.positional]


def _write_audio(req: Request, names: list[str], audio: np.ndarray, sr: float) -> None:
    """One array per output channel, or every channel mixed into a single array."""
    if len(names) == 1:
        req.write_array(names[0], audio.mean(axis=0) if audio.shape[0] > 1 else audio[0], sr)
    elif len(names) == audio.shape[0]:
        for name, channel in zip(names, audio):
            req.write_array(name, channel, sr)
    else:
        raise PdError(f"this model outputs {audio.shape[0]} channel(s): give one array (mixed) or "
                      f"{audio.shape[0]}, got {len(names)}")


@worker.message("load <file.ts> [--sr N]", help="load a RAVE export (N only for exports that do not store their "
                "rate); replies loaded <sr> <latent_size> <ratio> <methods...>", timeout=600)
def load(req: Request) -> None:
    opts = req.options(known={"sr"})
    if not opts.positional:
        raise req.usage()
    path = find_checkpoint(req, opts.positional[0], "RAVE export", suffixes=(".ts",))  # nn~ lets you leave out .ts
    model = RaveModel.load(path, device=req.device, sample_rate=_rate(opts))  # a failure keeps the old one
    req.state["model"] = model
    req.state["edits"] = LatentEdits()
    req.reply("loaded", model.sample_rate, model.latent_size, model.ratio, *model.methods)


@worker.message("info", help="what the loaded export says about itself, one line per fact", timeout=10)
def info(req: Request) -> None:
    model = req.loaded()
    req.reply("file", str(model.path))
    req.reply("sr", model.sample_rate, model.sample_rate_source)
    req.reply("latent_size", model.latent_size, model.full_latent_size)
    req.reply("ratio", model.ratio, round(model.frame_rate, 3))
    req.reply("channels", model.in_channels, model.out_channels)
    req.reply("methods", *model.methods)
    req.reply("streaming", int(model.streaming))
    req.reply("prior", int(model.has_prior))
    req.reply("device", model.device)
    edits: LatentEdits = req.state.get("edits", LatentEdits())
    req.reply("bias", *[x for d, b in sorted(edits.bias.items()) for x in (d, b)])
    req.reply("scale", *[x for d, s in sorted(edits.scale.items()) for x in (d, s)])


def _set_edits(req: Request, kind: str) -> None:
    model = req.loaded()
    new = LatentEdits(**{kind: _pairs(req.args, kind)})
    if not new:
        raise req.usage()
    edits = req.state.get("edits", LatentEdits()).updated(new)
    edits.check(model.latent_size)
    req.state["edits"] = edits
    values = edits.bias if kind == "bias" else edits.scale
    req.reply(kind, *[x for d, v in sorted(values.items()) for x in (d, v)])


@worker.message("bias <dim> <value> [<dim> <value> ...]", help="add value to that latent dimension from now on",
                timeout=10)
def bias(req: Request) -> None:
    _set_edits(req, "bias")


@worker.message("scale <dim> <value> [<dim> <value> ...]", help="multiply that latent dimension from now on",
                timeout=10)
def scale(req: Request) -> None:
    _set_edits(req, "scale")


@worker.message("clear", help="forget every bias and scale", timeout=10)
def clear(req: Request) -> None:
    req.state["edits"] = LatentEdits()
    req.reply("cleared")


@worker.message("encode <in-array> <latent-prefix> [--sr N] [--seed N] [--bias d v..] [--scale d v..]",
                help="latents into arrays <prefix>-0, <prefix>-1, ...", timeout=None, reads="0", writes="1-*")
def encode(req: Request) -> None:
    opts = req.options(known=RUN_OPTIONS)
    src, prefix = _positional(req, opts, 2)[:2]
    model = req.loaded()
    edits, rate, seed = _edits(req, opts, model), _rate(opts), opts.get("seed", integer, None)
    names = _check_latents(req, prefix, model)
    audio = req.read_array(src)
    req.progress(0.0)
    z = model.encode(audio, rate, seed)
    z = edits.apply(z) if edits else z
    for name, row in zip(names, z):
        req.write_array(name, row)
    req.reply("encoded", prefix, model.latent_size, z.shape[1])


@worker.message("decode <latent-prefix> <out-array> [more out-arrays] [--sr N] [--seed N] [--bias d v..] "
                "[--scale d v..]", help="audio from arrays <prefix>-0, <prefix>-1, ...", timeout=None, reads="0-*",
                writes="1:")
def decode(req: Request) -> None:
    opts = req.options(known=RUN_OPTIONS)
    prefix, *outs = _positional(req, opts, 2)
    model = req.loaded()
    edits, rate, seed = _edits(req, opts, model), _rate(opts), opts.get("seed", integer, None)
    req.check_arrays(outs)
    names = _latent_names(prefix, model)
    try:
        rows = req.read_arrays(names)
    except PdError as exc:
        raise PdError(f"{exc} (decode reads {model.latent_size} latent arrays, {names[0]} to {names[-1]})") from exc
    lengths = {name: len(rows[name]) for name in names}
    if len(set(lengths.values())) != 1:
        detail = ", ".join(f"{n} has {k}" for n, k in lengths.items())
        raise PdError(f"the latent arrays must all have the same length: {detail}")
    req.progress(0.0)
    audio = model.decode(np.stack([rows[n] for n in names]), edits, rate, seed)
    _write_audio(req, outs, audio, rate or model.sample_rate)
    req.reply("decoded", outs[0], audio.shape[1])


@worker.message("forward <in-array> <out-array> [more out-arrays] [--latent prefix] [--sr N] [--seed N] "
                "[--bias d v..] [--scale d v..]", help="timbre transfer through the model", timeout=None,
                reads="0", writes="1: --latent-*")
def forward(req: Request) -> None:
    opts = req.options(known=RUN_OPTIONS | {"latent"})
    src, *outs = _positional(req, opts, 2)
    model = req.loaded()
    edits, rate, seed = _edits(req, opts, model), _rate(opts), opts.get("seed", integer, None)
    prefix = opts.get("latent", str, None)
    req.check_arrays(outs)
    latent_names = _check_latents(req, prefix, model) if prefix else []
    audio = req.read_array(src)
    req.progress(0.0)
    out, z = model.forward(audio, rate, edits, seed, req.progress, with_latent=bool(prefix))
    _write_audio(req, outs, out, rate or model.sample_rate)
    for name, row in zip(latent_names, z if z is not None else []):
        req.write_array(name, row)
    req.reply("forwarded", outs[0], out.shape[1])


@worker.message("sample <out-array> <seconds> [--temp T] [--latent prefix] [--sr N] [--seed N] [--bias d v..] "
                "[--scale d v..]", help="new sound from the export's prior", timeout=None, writes="0 --latent-*")
def sample(req: Request) -> None:
    opts = req.options(known=RUN_OPTIONS | {"latent", "temp"})
    if len(opts.positional) < 2:
        raise req.usage()
    out = symbol(opts.positional[0], "array name")
    seconds = number(opts.positional[1], "seconds")
    if not 0 < seconds <= MAX_SECONDS:
        raise PdError(f"seconds must be more than 0 and at most {MAX_SECONDS:g}")
    model = req.loaded()
    edits, rate, seed = _edits(req, opts, model), _rate(opts), opts.get("seed", integer, None)
    temp = opts.get("temp", float, 0.0)
    prefix = opts.get("latent", str, None)
    req.check_arrays([out])
    latent_names = _check_latents(req, prefix, model) if prefix else []
    req.progress(0.0)
    audio, z = model.sample(seconds, temp, edits, rate, seed, req.progress)
    _write_audio(req, [out], audio, rate or model.sample_rate)
    for name, row in zip(latent_names, z):
        req.write_array(name, row)
    req.reply("sampled", out, audio.shape[1])


if __name__ == "__main__":
    worker.run()
