"""Protocol glue for the diagnostics worker (see docs/protocol.md, section pdbridge.diagnostics).

Not a model: the bridge's own check. It makes sounds with known samples, echoes arrays, and fails
in every way a model can (an exception, a crash, a hang), so each path through the bridge can be
tested in real Pd — as jupyter_client's misbehaving test kernels do for Jupyter.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import soundfile

from workers.runtime import PdError, Request, Worker, integer, number, sample_rate, symbol
from workers.runtime.checkpoints import find_checkpoint
from workers.runtime.jobs import register_job_messages, start_job

from .signals import noise, sine

worker = Worker("diagnostics", load_hint="load <soundfile>")
register_job_messages(worker)

MAX_SAMPLES = 50_000_000


@worker.message("ping [atoms...]", help="answers pong with the same atoms", timeout=10)
def ping(req: Request) -> None:
    req.reply("pong", *req.args)


@worker.message("tone <array> [freq 440] [seconds 1] [sr 44100]", help="a sine (amplitude 0.5) into an array",
                timeout=60, writes="0")
def tone(req: Request) -> None:
    if not req.args:
        raise req.usage("tone needs an array name")
    name = symbol(req.args[0], "array")
    freq, seconds = [number(a, what) for a, what in zip(req.args[1:3], ("freq", "seconds"))] + [440.0, 1.0][
        len(req.args[1:3]):]
    sr = sample_rate(req.args[3], "sr") if len(req.args) > 3 else 44100
    if not 0 < seconds * sr <= MAX_SAMPLES:
        raise PdError(f"tone: seconds x sr must give 1..{MAX_SAMPLES} samples")
    if not 0 <= freq < sr / 2:
        raise PdError(f"tone: freq must be between 0 and sr/2 ({sr / 2:g} Hz)")
    req.check_arrays([name])
    samples = sine(freq, seconds, sr)
    req.write_array(name, samples, sr)
    req.reply("tone", name, len(samples))


def _array_and_length(req: Request) -> tuple[str, int]:
    """``<array> <samples>``, the first two arguments of noise and unchecked."""
    if len(req.args) < 2:
        raise req.usage(f"{req.selector} needs an array and a length")
    name, n = symbol(req.args[0], "array"), integer(req.args[1], "samples")
    if not 0 < n <= MAX_SAMPLES:
        raise PdError(f"{req.selector}: samples must be 1..{MAX_SAMPLES}")
    return name, n


@worker.message("noise <array> <samples> [seed 0]", help="reproducible uniform noise in [-1, 1)", timeout=60,
                writes="0")
def noise_(req: Request) -> None:
    name, n = _array_and_length(req)
    seed = integer(req.args[2], "seed") if len(req.args) > 2 else 0
    req.check_arrays([name])
    req.write_array(name, noise(n, seed))
    req.reply("noise", name, n)


@worker.message("unchecked <array> <samples>", help="noise written without asking Pd first (as a model that "
                "skips the check; a missing array still gives only an error)", timeout=60, writes="0")
def unchecked(req: Request) -> None:
    name, n = _array_and_length(req)
    req.write_array(name, noise(n, 0))
    req.reply("unchecked", name, n)


@worker.message("echo <in-array> <out-array> [gain 1]", help="copy an array through the worker", timeout=60,
                reads="0", writes="1")
def echo(req: Request) -> None:
    if len(req.args) < 2:
        raise req.usage("echo needs two arrays")
    src, dst = symbol(req.args[0], "input array"), symbol(req.args[1], "output array")
    gain = number(req.args[2], "gain") if len(req.args) > 2 else 1.0
    req.check_arrays([dst])
    samples = req.read_array(src)
    req.write_array(dst, samples * gain if gain != 1.0 else samples)
    req.reply("echo", dst, len(samples))


@worker.message("load <soundfile>", help="reads a file the way models read checkpoints", timeout=60)
def load(req: Request) -> None:
    if not req.args:
        raise req.usage()
    path = find_checkpoint(req, req.args[0], "sound file", suffixes=(".wav",))
    try:
        samples, sr = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise PdError(f"{path} is not a sound file pdbridge can read ({exc})") from exc
    req.state["model"] = (samples[:, 0].copy(), float(sr))
    req.reply("loaded", len(samples), sr)


@worker.message("play <array>", help="the loaded sound into an array", timeout=60, writes="0")
def play(req: Request) -> None:
    samples, sr = req.loaded()
    if not req.args:
        raise req.usage()
    name = symbol(req.args[0], "array")
    req.check_arrays([name])
    req.write_array(name, samples, sr)
    req.reply("play", name, len(samples), sr)


@worker.message("sleep [seconds 1]", help="waits, reporting progress with the time left; cancellable",
                timeout=None)
def sleep(req: Request) -> None:
    seconds = number(req.args[0], "seconds") if req.args else 1.0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        req.progress(elapsed / seconds, f"{seconds - elapsed:.1f} s left")
        time.sleep(min(0.02, seconds - elapsed))
    req.reply("slept", seconds)


@worker.message("hang", help="never returns and ignores cancel (its timeout is 1 s)", timeout=1)
def hang(req: Request) -> None:
    while True:
        time.sleep(0.1)


@worker.message("overtime [seconds 2]", help="works past its 1 s timeout, then stops cleanly when told to",
                timeout=1)
def overtime(req: Request) -> None:
    seconds = number(req.args[0], "seconds") if req.args else 2.0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        req.check_cancelled()
        time.sleep(0.01)
    req.reply("overtime", seconds)


@worker.message("crash", help="the worker kills itself with SIGKILL mid-request", timeout=10)
def crash(req: Request) -> None:
    req.progress(0.5)
    time.sleep(0.1)  # let the progress message leave first, as a real model would have
    os.kill(os.getpid(), signal.SIGKILL)


@worker.message("fail [text...]", help="raises an unexpected exception, as a model bug would", timeout=10)
def fail(req: Request) -> None:
    raise RuntimeError(" ".join(str(a) for a in req.args) or "deliberate failure")


@worker.message("count <n>", help="replies with the numbers 0..n-1 in one list (long lists travel in parts)",
                timeout=10)
def count(req: Request) -> None:
    n = integer(req.args[0], "n") if req.args else 0
    if not 0 <= n <= 100_000:
        raise PdError("count: n must be 0..100000")
    req.reply("count", *range(n))


@worker.message("pid", help="the worker's process id", timeout=10)
def pid(req: Request) -> None:
    req.reply("pid", os.getpid())


@worker.message("events <n> [interval 0.01]", help="n lines 'tick i' out of the left outlet while it runs, then "
                "the result", timeout=60)
def events(req: Request) -> None:
    n = integer(req.args[0], "n") if req.args else 1
    interval = number(req.args[1], "interval") if len(req.args) > 1 else 0.01
    for i in range(n):
        req.check_cancelled()
        req.event("tick", i)
        time.sleep(interval)
    req.reply("events", n)


@worker.message("later <seconds> [atoms...]", help="answers at once; 'later <atoms>' follows after the request "
                "ended (an event from another thread)", timeout=10)
def later(req: Request) -> None:
    if not req.args:
        raise req.usage()
    delay = number(req.args[0], "seconds")
    session, atoms = req.session, list(req.args[1:])
    threading.Timer(delay, worker.emit, args=(session, "later", *atoms)).start()
    req.reply("scheduled", delay)


@worker.message("melody <count> [step 0.1] [--text name]", help="a rising note list played on Pd's clock: "
                "note <pitch> <velocity> at each step, then played", timeout=10)
def melody(req: Request) -> None:
    opts = req.options(known={"text"})
    if not opts.positional:
        raise req.usage()
    n = integer(opts.positional[0], "count")
    step = number(opts.positional[1], "step") if len(opts.positional) > 1 else 0.1
    if not 0 < n <= 1000 or not step > 0:
        raise PdError("melody: count must be 1..1000 and step more than 0")
    text = opts.get("text", symbol, None)
    req.write_notes([(i * step, 60 + i % 24, 100, step * 0.5) for i in range(n)], text=text)
    req.reply("melody", n)


@worker.message("countdown <seconds>", help="starts a job that counts down for that long (stop, resume and "
                "status work on it); replies started <job>", timeout=30)
def countdown(req: Request) -> None:
    if not req.args:
        raise req.usage()
    seconds = number(req.args[0], "seconds")
    if not 0 < seconds <= 3600:
        raise PdError("countdown: seconds must be more than 0 and at most 3600")
    job = start_job(req, "countdown", "workers.diagnostics.jobs:countdown", {"seconds": seconds})
    req.reply("started", job.id)


if __name__ == "__main__":
    worker.run()
