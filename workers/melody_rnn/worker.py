"""Protocol glue for the MelodyRNN worker: the AI duet (messages in docs/models/melody_rnn.md).

Model code lives beside this file (:mod:`.model`, :mod:`.phrase`); here Pd messages become calls on
it. Message names follow the course's ``melody_rnn`` object (``load``, ``note``, ``generate``,
``clear``, ``state``). What is played in real time stays in Pd: the abstraction stamps each note with
Pd's logical time, decides when a phrase ends (duet mode) and plays the answer on its own clock; the
worker records phrases and answers them.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional

# TensorFlow 1-style graph code warns about every deprecated call it makes; the worker's stderr
# reaches the Pd console, so keep it for us.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=RuntimeWarning, module="pydub")
logging.getLogger("tensorflow").setLevel(logging.ERROR)

from workers.runtime import PdError, Request, Worker, integer, number, symbol  # noqa: E402
from workers.runtime.args import Options, Value  # noqa: E402
from workers.runtime.cache import path_key  # noqa: E402
from workers.runtime.checkpoints import find_checkpoint  # noqa: E402

from .model import Answer, MelodyModel, ModelError  # noqa: E402
from .phrase import Phrase, estimate_qpm, primer, seconds  # noqa: E402

worker = Worker("melody_rnn", user_errors=(ModelError,), load_hint="load <bundle.mag>")

MAX_STEPS = 4096
"""256 bars of sixteenths: far beyond any answer, short enough to stay within the timeout."""
RULES: dict[str, tuple[Callable[[Value, str], Any], Callable[[Any], bool], str]] = {
    "temperature": (number, lambda t: 0 < t <= 100, "more than 0 and at most 100 (1 is the model's own)"),
    "beam_size": (integer, lambda b: 1 <= b <= 64, "a whole number from 1 to 64"),
    "branch_factor": (integer, lambda f: 1 <= f <= 64, "a whole number from 1 to 64"),
    "qpm": (number, lambda q: 10 <= q <= 600, "between 10 and 600 quarter notes a minute"),
    "seed": (integer, lambda n: 0 <= n < 2**32, "a whole number from 0 to 4294967295"),
    "text": (symbol, lambda _: True, "a name"),
}
"""The options ``generate`` takes for one answer and ``options`` keeps for all of them: (converter,
check, what a value must be)."""


@dataclass(frozen=True)
class Choices:
    """How an object's answers are generated: magenta's defaults until ``options`` changes them."""

    temperature: float = 1.0
    beam_size: int = 1
    branch_factor: int = 1
    qpm: Optional[float] = None
    """None: estimated from each phrase."""
    seed: Optional[int] = None
    """None: a new answer every time."""
    text: Optional[str] = None
    """A [text define] each answer is copied into."""

    def updated(self, opts: Options) -> "Choices":
        """These choices with the options given in ``opts`` replaced, each checked."""
        changes = {}
        for key, (kind, valid, rule) in RULES.items():
            if opts.has(key):
                changes[key] = opts.get(key, kind)
                if not valid(changes[key]):
                    raise PdError(f"--{key} must be {rule}")
        return dataclasses.replace(self, **changes)

    def atoms(self) -> list:
        """As options a message box could send again."""
        atoms: list = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                atoms += [f"--{field.name}", value]
        return atoms


def _phrase(req: Request) -> Phrase:
    return req.state.setdefault("phrase", Phrase())


def _choices(req: Request) -> Choices:
    return req.state.get("choices", Choices())


@worker.message("load <bundle.mag or run folder> [--config NAME] [--hparams H]",
                help="a generator bundle (its config is read from it) or a melody_rnn_train run folder (newest "
                "checkpoint; --config basic_rnn|mono_rnn|lookback_rnn|attention_rnn and the --hparams it was trained "
                "with); replies loaded <config> <lowest pitch> <highest pitch> <steps per quarter>", timeout=300)
def load(req: Request) -> None:
    opts = req.options(known={"config", "hparams"})
    if len(opts.positional) != 1:
        raise req.usage()
    path = find_checkpoint(req, opts.positional[0], "MelodyRNN bundle or run folder", suffixes=(".mag",)).resolve()
    config = opts.get("config", symbol, None)
    hparams = opts.get("hparams", symbol, "")
    key = ("melody_rnn", path_key(path), config, hparams)  # retraining into the same folder is a new key
    if worker.cache.get(key) is None:
        req.progress(0.0, f"loading {path.name}")
    model = worker.cache.get_or_make(key, lambda: MelodyModel.load(path, config, hparams), nbytes=lambda m: m.nbytes)
    req.state["model"] = model
    req.reply("loaded", model.config_name, model.min_pitch, model.max_pitch, model.steps_per_quarter)


@worker.message("info", help="one line per fact: config, pitches <lowest> <highest>, steps_per_quarter, description, "
                "file", timeout=10)
def info(req: Request) -> None:
    model: MelodyModel = req.loaded()
    req.reply("config", model.config_name)
    req.reply("pitches", model.min_pitch, model.max_pitch)
    req.reply("steps_per_quarter", model.steps_per_quarter)
    req.reply("description", *model.description.split())
    req.reply("file", str(model.source))


@worker.message("note <pitch> <velocity> <ms since the object's previous note>",
                help="records a key press (velocity 0: its release) in the phrase; [pdbridge.melody_rnn] adds Pd's "
                "logical time, so send it note <pitch> <velocity>; no reply", timeout=10)
def note(req: Request) -> None:
    if len(req.args) != 3:
        raise req.usage("send notes to [pdbridge.melody_rnn], which adds the time" if len(req.args) == 2 else "")
    pitch, velocity = integer(req.args[0], "pitch"), integer(req.args[1], "velocity")
    gap = number(req.args[2], "ms")
    if not (0 <= pitch <= 127 and 0 <= velocity <= 127 and gap >= 0):
        raise PdError(f"note {pitch} {velocity}: pitch and velocity must be 0..127")
    _phrase(req).add(pitch, velocity, gap)


@worker.message("clear", help="forgets the recorded phrase (duet mode clears it when a new phrase starts); no reply",
                timeout=10)
def clear(req: Request) -> None:
    _phrase(req).clear()


@worker.message("state", help="the recorded phrase: phrase <notes> <seconds>, held <pitches...> (keys still down), "
                "recorded <pitch> <velocity> <onset ms> <duration ms> per note, then options <...>", timeout=10)
def state(req: Request) -> None:
    phrase = _phrase(req)
    notes = phrase.notes()
    req.reply("phrase", len(notes), seconds(notes))
    if phrase.held:
        req.reply("held", *phrase.held)
    for n in notes:
        req.reply("recorded", n.pitch, n.velocity, n.start_ms, n.end_ms - n.start_ms)
    req.reply("options", *_choices(req).atoms())


@worker.message("options [reset] [--temperature T] [--beam_size B] [--branch_factor F] [--qpm Q] [--seed N] "
                "[--text name]", help="how this object's answers are made from now on (duet mode's too): each option "
                "given replaces its value, reset first returns all to the model's own (temperature 1, beam 1, tempo "
                "estimated from the phrase, a new answer each time, no text); replies options <--key value...>",
                timeout=10)
def options(req: Request) -> None:
    opts = req.options(known=RULES)
    if opts.positional not in ([], ["reset"]):
        raise req.usage()
    base = Choices() if opts.positional else _choices(req)
    req.state["choices"] = base.updated(opts)
    req.reply("options", *req.state["choices"].atoms())


@worker.message("generate [seconds] [--steps N] [--temperature T] [--beam_size B] [--branch_factor F] [--qpm Q] "
                "[--seed N] [--text name]",
                help="answers the recorded phrase: the object plays note <pitch> <velocity> on Pd's clock, then "
                "played; the answer lasts <seconds> (or N steps) from one step after the phrase; options are for "
                "this answer only (see options); replies answer <notes> <seconds> <qpm> <ms the model took>, and "
                "transposed <played> <heard> ... when the phrase spans more than the model's range", timeout=300)
def generate(req: Request) -> None:
    opts = req.options(known={*RULES, "steps"})
    if len(opts.positional) > 1 or bool(opts.positional) == opts.has("steps"):
        raise req.usage("give the answer's length in seconds or --steps")
    model: MelodyModel = req.loaded()
    choices = _choices(req).updated(opts)
    notes = _phrase(req).notes()
    qpm = choices.qpm or estimate_qpm(notes)
    if opts.positional:
        length = number(opts.positional[0], "seconds")
        steps = model.steps_in(length, qpm)
        what = f"{length:g} s is {steps} steps at {qpm:g} qpm"
    else:
        steps = opts.get("steps", integer)
        what = f"{steps} steps"
    if not 1 <= steps <= MAX_STEPS:
        raise PdError(f"{what}: an answer is 1 to {MAX_STEPS} steps")
    answer = model.answer(primer(notes, qpm), steps, choices.temperature, choices.beam_size, choices.branch_factor,
                          choices.seed, on_step=req.check_cancelled)
    req.write_notes(answer.notes, text=choices.text)
    req.state["answer"] = answer
    req.reply("answer", len(answer.notes), answer.seconds, answer.qpm, round(answer.model_ms, 1))
    if answer.transposed:
        req.reply("transposed", *[p for pair in answer.transposed for p in pair])


@worker.message("save <file.mid>", help="the last answer as a MIDI file (one track at its tempo); replies saved <file> "
                "<notes>", timeout=30)
def save(req: Request) -> None:
    if len(req.args) != 1:
        raise req.usage()
    answer: Optional[Answer] = req.state.get("answer")
    if answer is None:
        raise PdError("no answer to save yet: send generate first")
    path = req.resolve_path(req.args[0])
    if not path.parent.is_dir():
        raise PdError(f"folder not found: {path.parent}")
    answer.write_midi(path)
    req.reply("saved", str(path), len(answer.notes))


if __name__ == "__main__":
    worker.run()
