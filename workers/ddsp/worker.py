"""Protocol glue for the DDSP timbre-transfer worker (messages documented in docs/models/ddsp.md).

Model code lives beside this file (:mod:`.model`, :mod:`.features`, :mod:`.pitch`, :mod:`.stats`);
here Pd messages become calls on it and results become Pd arrays. ``run`` keeps the course's
argument order (``run <model> <in> <out> [octave confidence loudness in_sr out_sr adjust quiet
autotune]``); named options do the same without the course's order.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=RuntimeWarning, module="pydub")
logging.getLogger("tensorflow").setLevel(logging.ERROR)

import numpy as np  # noqa: E402

import workers.ddsp  # noqa: E402,F401  TensorFlow imported quietly, ddsp importable

from workers.runtime import PdError, Request, Worker, integer, number, sample_rate, symbol  # noqa: E402
from workers.runtime.args import Options  # noqa: E402
from workers.runtime.cache import content_key, path_key  # noqa: E402
from workers.runtime.checkpoints import find_checkpoint  # noqa: E402
from workers.runtime.resample import resample  # noqa: E402

from . import features as feats  # noqa: E402
from . import pitch  # noqa: E402
from .model import Instrument, ModelError, load as load_model  # noqa: E402

worker = Worker("ddsp", user_errors=(ModelError, pitch.PitchError), load_hint="load <model folder or name>")

DEFAULT_IN_SR = 44100.0
NORMALIZE_PEAK = 0.9
RUN_OPTIONS = {"octave", "confidence", "loudness", "autotune", "quiet", "adjust", "sr", "out_sr", "tracker",
               "normalize", "seed", "right"}
COURSE_ORDER = ("octave", "confidence", "loudness", "sr", "out_sr", "adjust", "quiet", "autotune")
"""The course's positional arguments after <model> <in> <out>."""
MAX_SECONDS = 600


def _find_model(req: Request, name: object) -> Path:
    """A model folder beside the patch, else one ``pdbridge models fetch`` put in the models folder."""
    return find_checkpoint(req, symbol(name, "model"), "DDSP model").resolve()  # type: ignore[arg-type]


def _instrument(req: Request, path: Path) -> Instrument:
    """The object's model for ``path``: its own if it is that one, else from the worker's cache."""
    held = req.state.get("model")
    key = ("model", path_key(path))
    if held is not None and req.state.get("model_key") == key:
        return held
    req.progress(0.0, f"loading {path.name}")
    model = worker.cache.get_or_make(key, lambda: load_model(path), nbytes=lambda m: m.nbytes)
    req.state.update(model=model, model_key=key)
    _warm_up(model)
    return model


_warmed: set[tuple[int, int, str]] = set()


def _warm_up(model: Instrument) -> None:
    """Pay the first-call costs once, while the student waits for ``loaded`` anyway, so the first
    ``run`` costs only its own work: tracing CREPE's graph and its full-batch kernels (a batch's
    worth of frames), and librosa's lazy imports behind the loudness feature (about 1 s each)."""
    i = model.info
    if (i.sample_rate, i.frame_rate, i.feature) in _warmed:
        return
    silence = np.zeros(pitch.BATCH * pitch.SAMPLE_RATE // 100, np.float32)
    pitch.track(silence, i.frame_rate, "tiny")
    feats.level_db(silence[: pitch.SAMPLE_RATE], i)
    _warmed.add((i.sample_rate, i.frame_rate, i.feature))


@worker.message("load <model folder or name>", help="replies loaded <sample rate> <frame rate>", timeout=600)
def load(req: Request) -> None:
    if len(req.args) != 1:
        raise req.usage()
    model = _instrument(req, _find_model(req, req.args[0]))
    req.reply("loaded", model.info.sample_rate, model.info.frame_rate)


@worker.message("info", help="the loaded model's folder, kind, rates, harmonics, noise bands, statistics",
                timeout=10)
def info(req: Request) -> None:
    i = req.loaded().info
    req.reply("model", str(i.path))
    req.reply("kind", i.kind)
    if i.checkpoint_step is not None:
        req.reply("step", i.checkpoint_step)
    req.reply("sample_rate", i.sample_rate)
    req.reply("frame_rate", i.frame_rate)
    req.reply("harmonics", i.n_harmonics)
    req.reply("noise_bands", i.n_noise)
    req.reply("feature", i.feature)
    req.reply("statistics", int(i.statistics is not None))


def _input_audio(req: Request, name: str, sr: int, model: Instrument, opts: Options) -> np.ndarray:
    """The input sound; with ``--right <array>`` (a stereo file read into two arrays) the mono
    downmix, the mean of both channels, as the course's ``librosa.to_mono``."""
    right = opts.get("right", str, None)
    if right is None:
        audio = req.read_array(name)
    else:
        arrays = req.read_arrays([name, symbol(right, "--right")])
        left, right_audio = arrays[name], arrays[right]
        if len(left) != len(right_audio):
            raise PdError(f"{name} ({len(left)} samples) and {right} ({len(right_audio)}) must be the same length "
                          "to mix them to mono")
        audio = 0.5 * (left + right_audio)
    if len(audio) * model.info.frame_rate < 2 * sr:
        raise PdError(f"array {name} holds {len(audio)} samples: too short for a sound (at least two model frames, "
                      f"{2 / model.info.frame_rate:g} s); load or record a sound into it first")
    if len(audio) > MAX_SECONDS * sr:
        raise PdError(f"array {name} holds {len(audio) / sr:.0f} s at {sr} Hz; at most {MAX_SECONDS} s per request")
    return audio


def _features(req: Request, model: Instrument, audio: np.ndarray, sr: int, tracker: str) -> feats.Features:
    """Features of ``audio`` for ``model``, computed once per content, rate, tracker and model rates."""
    i = model.info
    key = ("features", content_key(audio, sr, tracker, i.sample_rate, i.frame_rate, i.feature, i.frame_size))
    found = worker.cache.get(key)
    if found is not None:
        return found
    req.progress(0.05, "tracking pitch" + (" (CREPE full: slow)" if tracker == "full" else ""))
    at_model = resample(audio, sr, i.sample_rate)
    at_16k = at_model if i.sample_rate == pitch.SAMPLE_RATE else resample(audio, sr, pitch.SAMPLE_RATE)
    result = feats.compute(at_model, at_16k, i, tracker)
    worker.cache.put(key, result, result.nbytes)
    return result


def _tracker(opts: Options) -> str:
    tracker = symbol(opts.get("tracker", str, "tiny"), "--tracker")
    if tracker not in pitch.TRACKERS:
        raise PdError(f"--tracker must be one of {', '.join(pitch.TRACKERS)}, got {tracker}")
    return tracker


def _render(req: Request, model: Instrument, f0: np.ndarray, level: np.ndarray, out: str, out_sr: int,
            opts: Options) -> int:
    """Decode, synthesize, resample, normalise and stage ``out``; returns the sample count."""
    req.progress(0.6, "decoding")
    controls = model.controls(f0, level)
    req.progress(0.8, "synthesizing")
    audio = model.synthesize(controls, f0, seed=opts.get("seed", integer, 0))
    audio = resample(audio, model.info.sample_rate, out_sr)
    peak = number(opts.get("normalize", float, NORMALIZE_PEAK), "--normalize")
    if peak > 0 and np.abs(audio).max() > 0:
        audio = audio * (peak / np.abs(audio).max())
    req.write_array(out, audio, out_sr)
    return len(audio)


def _run_settings(opts: Options, given: dict[str, object]) -> feats.Settings:
    def value(name: str, default: float) -> float:
        return number(opts.get(name, float, given.get(name, default)), "--" + name)  # type: ignore[arg-type]

    d = feats.Settings()
    settings = feats.Settings(octave=value("octave", d.octave), confidence=value("confidence", d.confidence),
                              loudness=value("loudness", d.loudness), adjust=bool(value("adjust", float(d.adjust))),
                              quiet=value("quiet", d.quiet), autotune=value("autotune", d.autotune))
    if not 0 <= settings.confidence <= 1:
        raise PdError(f"the confidence threshold must be between 0 and 1, got {settings.confidence:g}")
    if not 0 <= settings.autotune <= 1:
        raise PdError(f"autotune must be between 0 and 1, got {settings.autotune:g}")
    if abs(settings.octave) > 10:
        raise PdError(f"the octave shift must be between -10 and 10, got {settings.octave:g}")
    return settings


RUN_USAGE = ("[--octave N] [--confidence C] [--loudness dB] [--autotune A] [--quiet dB] [--adjust 0|1] [--sr N] "
             "[--out_sr N] [--tracker tiny|full] [--normalize 0.9] [--seed N] [--right <array>]")


def _transfer(req: Request, model: Instrument, names: list, extra: list, opts: Options) -> None:
    """Timbre transfer of array ``names[0]`` into ``names[1]``: features (cached), the sliders'
    settings, decoding, synthesis."""
    if len(extra) > len(COURSE_ORDER):
        raise req.usage()
    given = dict(zip(COURSE_ORDER, extra))
    in_name, out = (symbol(n, "array") for n in names)
    sr = sample_rate(opts.get("sr", float, given.get("sr", DEFAULT_IN_SR)), "the input sample rate")
    out_sr = sample_rate(opts.get("out_sr", float, given.get("out_sr", model.info.sample_rate)),
                         "the output sample rate")
    settings = _run_settings(opts, given)
    tracker = _tracker(opts)
    req.check_arrays([out])
    features = _features(req, model, _input_audio(req, in_name, sr, model, opts), sr, tracker)
    f0, level = feats.transfer(features, settings, model.info.statistics)
    req.reply("transferred", _render(req, model, f0, level, out, out_sr, opts))


@worker.message("run <model> <in> <out> [octave 0] [confidence 0.2] [loudness 0] [in_sr 44100] [out_sr 16000] "
                "[adjust 1] [quiet 20] [autotune 0] " + RUN_USAGE,
                help="the course's timbre transfer: replies transferred <samples>", timeout=900, reads="1 --right",
                writes="2")
def run(req: Request) -> None:
    opts = req.options(known=RUN_OPTIONS)
    pos = opts.positional
    if len(pos) < 3:
        raise req.usage()
    _transfer(req, _instrument(req, _find_model(req, pos[0])), pos[1:3], pos[3:], opts)


@worker.message("transfer <in> <out> " + RUN_USAGE, help="timbre transfer with the loaded model: replies "
                "transferred <samples>", timeout=900, reads="0 --right", writes="1")
def transfer(req: Request) -> None:
    opts = req.options(known=RUN_OPTIONS)
    if len(opts.positional) != 2:
        raise req.usage()
    _transfer(req, req.loaded(), opts.positional, [], opts)


@worker.message("features <in> <f0> <confidence> <loudness> [--sr 44100] [--tracker tiny|full] [--right <array>]",
                help="the curves the model hears; replies features <frames> <frame rate>", timeout=900,
                reads="0 --right", writes="1:4")
def features(req: Request) -> None:
    opts = req.options(known={"sr", "tracker", "right"})
    if len(opts.positional) != 4:
        raise req.usage()
    in_name, f0_name, conf_name, level_name = (symbol(v, "array") for v in opts.positional)
    model = req.loaded()
    sr = opts.get("sr", sample_rate, DEFAULT_IN_SR)
    tracker = _tracker(opts)
    req.check_arrays([f0_name, conf_name, level_name])
    result = _features(req, model, _input_audio(req, in_name, sr, model, opts), sr, tracker)
    rate = model.info.frame_rate
    req.write_array(f0_name, result.f0_hz, rate)
    req.write_array(conf_name, result.confidence, rate)
    req.write_array(level_name, result.level_db, rate)
    req.reply("features", len(result.f0_hz), rate)


@worker.message("synthesize <f0> <loudness> <out> [--out_sr N] [--normalize 0.9] [--seed 0]",
                help="play f0 (Hz) and loudness (dB) curves, one value per frame; replies synthesized <samples>",
                timeout=600, reads="0:2", writes="2")
def synthesize(req: Request) -> None:
    opts = req.options(known={"out_sr", "normalize", "seed"})
    if len(opts.positional) != 3:
        raise req.usage()
    f0_name, level_name, out = (symbol(v, "array") for v in opts.positional)
    model = req.loaded()
    out_sr = opts.get("out_sr", sample_rate, model.info.sample_rate)
    req.check_arrays([out])
    arrays = req.read_arrays([f0_name, level_name])
    f0, level = arrays[f0_name], arrays[level_name]
    if len(f0) != len(level) or len(f0) < 2:
        raise PdError(f"{f0_name} ({len(f0)} values) and {level_name} ({len(level)}) must have the same length, "
                      f"at least 2 frames ({model.info.frame_rate} frames per second)")
    if len(f0) > MAX_SECONDS * model.info.frame_rate:
        raise PdError(f"at most {MAX_SECONDS} s of curves per request")
    if (f0 < 0).any():
        raise PdError(f"{f0_name} holds negative frequencies; f0 is in Hz (0 = silence)")
    f0 = np.clip(f0, 0.0, model.info.sample_rate / 2)
    level = np.clip(level, -200.0, 20.0)
    req.reply("synthesized", _render(req, model, f0, level, out, out_sr, opts))


if __name__ == "__main__":
    worker.run()
