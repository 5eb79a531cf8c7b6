"""Protocol glue for the diagnostics worker (see docs/protocol.md, section pdbridge.diagnostics)."""
from __future__ import annotations

import os
import signal
import time

import soundfile

from workers.runtime import PdError, Request, Worker, integer, number, symbol

from .signals import noise, sine

worker = Worker("diagnostics")

MAX_SAMPLES = 50_000_000


@worker.message("ping", help="ping [atoms...]: answers pong with the same atoms", timeout=10)
def ping(req: Request) -> None:
    req.reply("pong", *req.args)


@worker.message("tone", help="tone <array> [freq 440] [seconds 1] [sr 44100]: a sine into an array", timeout=60)
def tone(req: Request) -> None:
    if not req.args:
        raise PdError("tone needs an array name: tone <array> [freq] [seconds] [sr]")
    name = symbol(req.args[0], "array")
    given = [number(a, what) for a, what in zip(req.args[1:4], ("freq", "seconds", "sr"))]
    freq, seconds, sr = given + [440.0, 1.0, 44100.0][len(given):]
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
        raise PdError(f"{req.selector} needs an array and a length: {req.selector} <array> <samples>")
    name, n = symbol(req.args[0], "array"), integer(req.args[1], "samples")
    if not 0 < n <= MAX_SAMPLES:
        raise PdError(f"{req.selector}: samples must be 1..{MAX_SAMPLES}")
    return name, n


@worker.message("noise", help="noise <array> <samples> [seed 0]: reproducible noise (for tests)", timeout=60)
def noise_(req: Request) -> None:
    name, n = _array_and_length(req)
    seed = integer(req.args[2], "seed") if len(req.args) > 2 else 0
    req.check_arrays([name])
    req.write_array(name, noise(n, seed))
    req.reply("noise", name, n)


@worker.message("unchecked", help="unchecked <array> <samples>: noise written without asking Pd first "
                "(as a model that skips the check; the hub still refuses to report a missing array)", timeout=60)
def unchecked(req: Request) -> None:
    name, n = _array_and_length(req)
    req.write_array(name, noise(n, 0))
    req.reply("unchecked", name, n)


@worker.message("echo", help="echo <in-array> <out-array> [gain 1]: copy an array through the worker", timeout=60,
                reads="0:1")
def echo(req: Request) -> None:
    if len(req.args) < 2:
        raise PdError("echo needs two arrays: echo <in> <out> [gain]")
    src, dst = symbol(req.args[0], "input array"), symbol(req.args[1], "output array")
    gain = number(req.args[2], "gain") if len(req.args) > 2 else 1.0
    req.check_arrays([dst])
    samples = req.read_array(src)
    req.write_array(dst, samples * gain if gain != 1.0 else samples)
    req.reply("echo", dst, len(samples))


@worker.message("load", help="load <soundfile>: reads a file the way models read checkpoints", timeout=60)
def load(req: Request) -> None:
    if not req.args:
        raise PdError("load needs a file: load <soundfile>")
    path = req.existing_path(req.args[0], "sound file")
    try:
        samples, sr = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise PdError(f"{path} is not a sound file pdbridge can read ({exc})") from exc
    req.state["sound"] = (samples[:, 0].copy(), float(sr))
    req.reply("loaded", len(samples), sr)


@worker.message("play", help="play <array>: the loaded sound into an array", timeout=60)
def play(req: Request) -> None:
    if "sound" not in req.state:
        raise PdError("nothing loaded: send load <soundfile> first")
    if not req.args:
        raise PdError("play needs an array: play <array>")
    name = symbol(req.args[0], "array")
    samples, sr = req.state["sound"]
    req.check_arrays([name])
    req.write_array(name, samples, sr)
    req.reply("play", name, len(samples), sr)


@worker.message("sleep", help="sleep <seconds>: waits, reporting progress; cancellable", timeout=None)
def sleep(req: Request) -> None:
    seconds = number(req.args[0], "seconds") if req.args else 1.0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        req.progress(elapsed / seconds)
        time.sleep(min(0.02, seconds - elapsed))
    req.reply("slept", seconds)


@worker.message("hang", help="hang: never returns and ignores cancel (its timeout is 1 s)", timeout=1)
def hang(req: Request) -> None:
    while True:
        time.sleep(0.1)


@worker.message("crash", help="crash: the worker kills itself with SIGKILL mid-request", timeout=10)
def crash(req: Request) -> None:
    req.progress(0.5)
    time.sleep(0.1)  # let the progress message leave first, as a real model would have
    os.kill(os.getpid(), signal.SIGKILL)


@worker.message("fail", help="fail [text]: raises an unexpected exception, as a model bug would", timeout=10)
def fail(req: Request) -> None:
    raise RuntimeError(" ".join(str(a) for a in req.args) or "deliberate failure")


@worker.message("count", help="count <n>: replies with the numbers 0..n-1 in one message", timeout=10)
def count(req: Request) -> None:
    n = integer(req.args[0], "n") if req.args else 0
    if not 0 <= n <= 100_000:
        raise PdError("count: n must be 0..100000")
    req.reply("count", *range(n))


@worker.message("pid", help="pid: the worker's process id", timeout=10)
def pid(req: Request) -> None:
    req.reply("pid", os.getpid())


if __name__ == "__main__":
    worker.run()
