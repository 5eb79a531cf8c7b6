"""Protocol glue for the GANSynth / GANSpaceSynth worker (messages documented in docs/models/gansynth.md).

Model code lives beside this file (:mod:`.model`, :mod:`.ganspace`, :mod:`.hallucinate`); here Pd
messages become calls on it and results become Pd arrays. Message names, argument order and
replies follow the course's ``gansynth`` and ``halluseq`` objects so its patches and teaching
material still read right; the differences (errors instead of silence, sample counts instead of
byte counts, any batch size) are listed in the docs.
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from typing import Callable, Iterator, Sequence

# TensorFlow 1-style graph code warns about every deprecated call it makes, and its CUDA probes log
# errors on machines without a GPU; the worker's stderr reaches the Pd console, so keep it for us.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=RuntimeWarning, module="pydub")
logging.getLogger("tensorflow").setLevel(logging.ERROR)

import numpy as np  # noqa: E402

from workers.runtime import PdError, Request, Worker, integer, number, symbol  # noqa: E402
from workers.runtime.args import Value  # noqa: E402
from workers.runtime.cache import path_key  # noqa: E402
from workers.runtime.checkpoints import find_checkpoint  # noqa: E402



@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 while TensorFlow's native libraries load.

    Importing TF 2.15 prints "Unable to register cuDNN/cuFFT/cuBLAS factory" errors from C++ on
    every machine, GPU or not, ignoring TF_CPP_MIN_LOG_LEVEL; in the Pd console they look like
    failures. Python exceptions raised by the import still propagate (after stderr is restored).
    """
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


with _native_stderr_silenced():
    import tensorflow  # noqa: E402,F401

from .ganspace import Components, ComponentsError, load_components  # noqa: E402
from .hallucinate import SETTINGS, HalluSeq, NoteShape, latent_path, overlap_add  # noqa: E402
from .model import CheckpointError, GANSynth, slerp  # noqa: E402

worker = Worker("gansynth", user_errors=(ValueError, CheckpointError, ComponentsError),
                load_hint="load <checkpoint folder> [batch size]")

DEFAULT_BATCH = 8
"""The course's default; use ``load <ckpt> 1`` for live slider work (one note costs one batch)."""
MAX_NOTES = 4096

def _components(req: Request) -> Components:
    comps = req.state.get("components")
    if comps is None:
        raise PdError("no GANSpace components loaded: send load_ganspace_components <file> <array> first")
    return comps


def _arrays(values: Sequence[Value], what: str) -> list[str]:
    return [symbol(v, what) for v in values]


def _z(req: Request, model: GANSynth, names: Sequence[str], also: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Latent arrays from Pd, each exactly ``latent_size`` long (plus ``also``, read in the same trip)."""
    arrays = req.read_arrays(list(dict.fromkeys([*names, *also])))
    for name in names:
        z = arrays[name]
        if len(z) != model.latent_size:
            raise PdError(f"array {name} has {len(z)} values; a latent vector has {model.latent_size} "
                          f"(send randomize_z {name} to fill it)")
    return arrays


@worker.message("load <checkpoint folder> [batch size 8]", help="replies loaded <samples> <sr>", timeout=900)
def load(req: Request) -> None:
    if not req.args:
        raise req.usage()
    path = find_checkpoint(req, req.args[0], "GANSynth checkpoint folder").resolve()
    batch = integer(req.args[1], "batch size") if len(req.args) > 1 else DEFAULT_BATCH
    if not 1 <= batch <= 256:
        raise PdError(f"batch size must be between 1 and 256, got {batch}")
    req.state.clear()
    key = ("gansynth", path_key(path), batch)  # a retrained checkpoint is a new key
    if worker.cache.get(key) is None:
        req.progress(0.0, "building the GANSynth graph")
    # Several objects (e.g. a synth and a sequencer) often load the same checkpoint: they share one
    # graph, and loading it again later is instant while the worker's cache holds it.
    model = worker.cache.get_or_make(key, lambda: GANSynth.load(path, batch_size=batch),
                                     nbytes=lambda _: _checkpoint_bytes(path))
    req.state["model"] = model
    req.reply("loaded", model.audio_length, model.sample_rate)


def _checkpoint_bytes(path: Path) -> int:
    """What a loaded model is counted as in the cache: its variables' size on disk."""
    return sum(p.stat().st_size for p in path.rglob("*.data-*"))


@worker.message("info", help="what the loaded model is (pitches, batch size, layers, components)", timeout=10)
def info(req: Request) -> None:
    model = req.loaded()
    req.reply("checkpoint", str(model.files.root) if model.files else "")
    req.reply("pitches", *model.pitches)
    req.reply("batch_size", model.batch_size)
    req.reply("latent_size", model.latent_size)
    req.reply("audio", model.audio_length, model.sample_rate)
    for layer in ("conv0", "conv1"):
        req.reply("layer", layer, *model.layer_shape(layer))
    comps = req.state.get("components")
    if comps is not None:
        req.reply("components", comps.count, comps.layer, req.state.get("amps_array", ""))


@worker.message("randomize_z <z-array> [more z-arrays] [--seed N]", help="random latent vectors", writes="0:",
                timeout=30)
def randomize_z(req: Request) -> None:
    opts = req.options(known={"seed"})
    names = _arrays(opts.positional, "z array")
    if not names:
        raise req.usage()
    model = req.loaded()
    req.check_arrays(names)
    seed = opts.get("seed", integer, None)
    zs = model.random_z(len(names), np.random.default_rng(seed))
    for name, z in zip(names, zs):
        req.write_array(name, z)
    req.reply("randomized")


@worker.message("slerp_z <z-a> <z-b> <z-out> <amount 0..1>", help="spherical interpolation", timeout=30, writes="2",
                reads="0:2")
def slerp_z(req: Request) -> None:
    if len(req.args) != 4:
        raise req.usage()
    a, b, out = _arrays(req.args[:3], "z array")
    amount = number(req.args[3], "amount")
    model = req.loaded()
    req.check_arrays([out])
    zs = _z(req, model, [a, b])
    req.write_array(out, slerp(zs[a], zs[b], amount))
    req.reply("slerped")


@worker.message("synthesize <z> <out> <pitch> [<z> <out> <pitch> ...]", help="one note per triple (with the GANSpace "
                "sliders applied when components are loaded)", timeout=None, reads="0::3 *", writes="1::3")
def synthesize(req: Request) -> None:
    if not req.args or len(req.args) % 3:
        raise req.usage()
    model = req.loaded()
    triples = [(symbol(req.args[i], "z array"), symbol(req.args[i + 1], "output array"),
                number(req.args[i + 2], "pitch")) for i in range(0, len(req.args), 3)]
    if len(triples) > MAX_NOTES:
        raise PdError(f"at most {MAX_NOTES} notes per synthesize")
    pitches = model.check_pitches([p for _, _, p in triples])
    if len(triples) > model.batch_size:
        # Worth a round trip to Pd only when the work is long; otherwise a missing output array is
        # reported when the notes land, and the live path (one note per slider move) stays short.
        req.check_arrays([out for _, out, _ in triples])
    amps_name = req.state.get("amps_array")
    arrays = _z(req, model, [z for z, _, _ in triples], also=[amps_name] if amps_name else [])
    offsets = None
    if amps_name is not None:
        comps = _components(req)
        amps = arrays[amps_name][:comps.count]
        if np.any(amps):
            offsets = (comps.layer, comps.offset(amps))
    zs = arrays
    audio = model.generate(np.stack([zs[z] for z, _, _ in triples]), pitches, offsets, req.progress)
    for (_, out, _), note in zip(triples, audio):
        req.write_array(out, note, model.sample_rate)
    req.reply("synthesized")


@worker.message("load_ganspace_components <file.npz> <amplitudes-array> [--allow_pickle 1]", help="GANSpace PCA "
                "for the sliders; replies loaded_pca <count>", timeout=300, reads="1", writes="1")
def load_ganspace_components(req: Request) -> None:
    opts = req.options(known={"allow_pickle"})
    if len(opts.positional) != 2:
        raise req.usage()
    model = req.loaded()
    path = req.existing_path(opts.positional[0], "GANSpace components file")
    amps_name = symbol(opts.positional[1], "amplitudes array")
    comps = load_components(path, allow_pickle=bool(opts.get("allow_pickle", integer, 0)))
    try:
        shape = model.layer_shape(comps.layer)
    except ValueError as exc:
        raise PdError(f"{path.name}: {exc}") from exc
    if shape != comps.layer_shape:
        raise PdError(f"{path.name} was computed for a layer {comps.layer} of shape {comps.layer_shape}, "
                      f"but this model's is {shape}: it belongs to another model")
    current = req.read_array(amps_name)[:comps.count]
    amps = np.pad(current, (0, comps.count - len(current)))
    req.write_array(amps_name, amps)
    req.state["components"] = comps
    req.state["amps_array"] = amps_name
    req.state["halluseq"] = HalluSeq([amps.copy()])
    req.reply("loaded_pca", comps.count)


def _noz_sounds(req: Request, atoms: Sequence[Value], model: GANSynth, count: int
                ) -> list[tuple[str, int, np.ndarray]]:
    """``out pitch [edits] [-- out pitch [edits]]...``; an edit is a number or an array of them."""
    groups: list[list[Value]] = [[]]
    for atom in atoms:
        if atom == "--":
            groups.append([])
        else:
            groups[-1].append(atom)
    if any(len(g) < 2 for g in groups):
        raise req.usage()
    names = {a for g in groups for a in g[2:] if isinstance(a, str)}
    arrays = req.read_arrays(sorted(names)) if names else {}
    sounds = []
    for g in groups:
        out, pitch = symbol(g[0], "output array"), number(g[1], "pitch")
        edits: list[float] = []
        for a in g[2:]:
            edits.extend(arrays[a].tolist() if isinstance(a, str) else [float(a)])
        if len(edits) > count:
            edits = edits[:count]  # an amplitudes array may be longer than the component count
        sounds.append((out, model.check_pitches([pitch])[0], np.asarray(edits, np.float32)))
    return sounds


@worker.message("synthesize_noz <out> <pitch> [edits or arrays...] [-- <out> <pitch> ...]", help="a note from the "
                "GANSpace mean moved by the edits (no latent vector)", timeout=None, reads="*", writes="*")
def synthesize_noz(req: Request) -> None:
    model, comps = req.loaded(), _components(req)
    sounds = _noz_sounds(req, req.args, model, comps.count)
    req.check_arrays([out for out, _, _ in sounds])
    values = np.stack([comps.layer_values(edits) for _, _, edits in sounds])
    audio = model.generate_from_layer(comps.layer, values, req.progress)
    for (out, _, _), note in zip(sounds, audio):
        req.write_array(out, note, model.sample_rate)
    req.reply("synthesized")


def _shape_args(values: Sequence[Value], defaults: Sequence[float]) -> list[float]:
    names = ("spacing", "start_trim", "attack", "sustain", "release", "pitch")
    given = [number(v, n) for v, n in zip(values, names)]
    return given + list(defaults[len(given):])


@worker.message("hallucinate <out> <note_count> <interp_steps> [spacing 0.2] [start_trim 0] [attack 0.5] "
                "[sustain 0.5] [release 0.5] [pitch]", help="replies hallucinated <samples>", timeout=None, writes="0")
def hallucinate(req: Request) -> None:
    if not 3 <= len(req.args) <= 9:
        raise req.usage()
    model = req.loaded()
    out = symbol(req.args[0], "output array")
    note_count, steps = integer(req.args[1], "note_count"), integer(req.args[2], "interp_steps")
    spacing, trim, attack, sustain, release, pitch = _shape_args(
        req.args[3:], (0.2, 0.0, 0.5, 0.5, 0.5, model.default_pitch()))
    if not 1 <= note_count <= 256 or not 0 <= steps <= 256:
        raise PdError("note_count must be 1..256 and interp_steps 0..256")
    shape = NoteShape(trim, attack, sustain, release)
    shape.check(model.audio_length / model.sample_rate)
    pitch = model.check_pitches([pitch])[0]
    req.check_arrays([out])
    path = latent_path(model.random_z(note_count), steps)
    notes = model.generate(path, [pitch] * len(path), None, req.progress)
    clip = overlap_add(notes, spacing, shape, model.sample_rate)
    req.write_array(out, clip, model.sample_rate)
    req.reply("hallucinated", len(clip))


# -- HALLU: the GANSpace step sequencer -------------------------------------------------------------
def _seq(req: Request) -> HalluSeq:
    _components(req)
    return req.state["halluseq"]


def _send_state(req: Request, seq: HalluSeq) -> None:
    req.reply("step", "index", seq.index)
    req.reply("step", "count", len(seq.steps))
    for name, value in seq.settings().items():
        req.reply("settings", name, value)


def _step_message(move: Callable[[HalluSeq], None]) -> Callable[[Request], None]:
    def handler(req: Request) -> None:
        seq = _seq(req)
        name = req.state["amps_array"]
        seq.store(req.read_array(name))
        move(seq)
        req.write_array(name, seq.current())
        _send_state(req, seq)
        req.reply("updated")
    return handler


for _name, _move, _help in [
        ("next_step", HalluSeq.next_step, "keep the edits array in this step, show the next (wraps)"),
        ("prev_step", HalluSeq.prev_step, "keep the edits array in this step, show the previous"),
        ("add_step", HalluSeq.add_step, "append a copy of this step and show it"),
        ("remove_step", HalluSeq.remove_step, "delete this step (the last one stays)")]:
    worker.message(_name, help=_help, timeout=30, reads="*", writes="*")(_step_message(_move))


def _setting_message(setting: str) -> Callable[[Request], None]:
    def handler(req: Request) -> None:
        if len(req.args) != 1:
            raise req.usage()
        seq = _seq(req)
        seq.set(setting, number(req.args[0], setting))
        req.reply("settings", setting, seq.settings()[setting])
        req.reply("updated")
    return handler


for _setting in SETTINGS:
    worker.message(f"{_setting} <value>", help="HALLU sequencer setting", timeout=10)(
        _setting_message(_setting))


@worker.message("send_state", help="HALLU step index/count and settings", timeout=10)
def send_state(req: Request) -> None:
    _send_state(req, _seq(req))


@worker.message("hallucinate_noz <out>", help="play the HALLU steps; replies hallucinated <samples>", reads="*",
                writes="0",
                timeout=None)
def hallucinate_noz(req: Request) -> None:
    if len(req.args) != 1:
        raise req.usage()
    model, comps, seq = req.loaded(), _components(req), _seq(req)
    out = symbol(req.args[0], "output array")
    seq.shape.check(model.audio_length / model.sample_rate)
    req.check_arrays([out])
    seq.store(req.read_array(req.state["amps_array"]))
    values = np.stack([comps.layer_values(edits) for edits in seq.path()])
    notes = model.generate_from_layer(comps.layer, values, req.progress)
    clip = overlap_add(notes, seq.sample_spacing, seq.shape, model.sample_rate)
    req.write_array(out, clip, model.sample_rate)
    req.reply("hallucinated", len(clip))


if __name__ == "__main__":
    worker.run()
