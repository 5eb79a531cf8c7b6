"""MelodyRNN benchmark: the AI duet's reaction time, phrase end -> first answer note, inside Pd.

attention_rnn at its full-size default config (2 x 128 LSTM, attention over 40 steps) with random
weights, in a bundle written here by magenta's own code (the compute does not depend on the
weights), answering in duet mode with an 8 s answer (``length 8 8``; at ``--qpm``, default 120:
64 steps). The hub runs in its own process (``pdbridge serve``), as for users; Pd is headless with
``-sleepgrain 1``, as ``pdbridge open`` starts it.

Each phrase (a few notes, pressed and released through the note inlets on Pd's clock) ends when
its 600 ms silence has passed: the abstraction sends ``generate``, and bench/patches/
melody_latency.pd, told by the scenario in that same logical tick, times with [realtime] until the
answer's first note-on comes out of the object. An answer that begins with a rest would add that
rest: the first note's onset is subtracted (it is known exactly, below), so ``latency`` is how late
the answer starts.

Two comparisons, per phrase:

- ``overhead``: latency minus the time magenta's generator took for that very answer inside the
  worker (the ``answer`` line's last atom): everything the bridge adds (Pd, the hub, the worker's
  own work before and after, the note list), measured around the same call, so the machine's load
  at that moment cancels out.
- ``direct``: magenta's generator called in this process (loaded as the worker loads it) on the
  same primer (the phrase as Pd recorded it, from ``state``), with the same options and seed, so it
  generates the same notes; after a pause as long as the phrase's silence, so both start from a
  machine that idled as long. ``latency - direct`` compares two processes at two moments: on a
  machine other programs load, it carries their noise, so both are reported.

Goals (2 CPU cores): latency <= 150 ms at the median and <= 300 ms at p99 over 50 phrases, bridge
overhead <= 10 ms.

Prints one JSON object, then one SUMMARY line. Run with the tf environment's Python:
``.cache/envs/tf/bin/python bench/melody_rnn.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import note_seq  # noqa: E402
import numpy as np  # noqa: E402
import pdharness  # noqa: E402
from pdharness import HubProcess, PdDriver  # noqa: E402

from workers.melody_rnn.bundles import random_bundle  # noqa: E402
from workers.melody_rnn.model import MelodyModel, answer_start, generation_options  # noqa: E402
from workers.melody_rnn.phrase import Note, primer  # noqa: E402

DRIVER = ROOT / "tests" / "workers" / "melody_rnn" / "patches" / "melody_driver.pd"
TIMER = ROOT / "bench" / "patches" / "melody_latency.pd"
SILENCE_MS = 600
ANSWER_S = 8


def phrase_lines(rng: np.random.Generator) -> list[str]:
    """A played phrase: 5 to 8 notes of C major, held 150-350 ms, 0-120 ms apart, then the mark."""
    lines, wait = [], 0.0
    for pitch in rng.choice([60, 62, 64, 65, 67, 69, 71, 72], size=int(rng.integers(5, 9))):
        held = float(rng.integers(150, 351))
        lines += [f"{wait:g} mrt-pitch {pitch} 100", f"{held:g} mrt-pitch {pitch} 0"]
        wait = float(rng.integers(0, 121))
    return lines + [f"{SILENCE_MS} bench-start bang"]


def answered(pd: PdDriver) -> tuple[float, list]:
    """(elapsed ms from melody_latency.pd, the answer line), in whichever order they come: an answer
    that starts with a rest has its result line out before its first note."""
    found: dict = {}
    while len(found) < 2:
        msg = pd.next()
        if msg[0] == "result" and msg[1] in ("elapsed", "answer"):
            found[msg[1]] = msg[2:]
    return float(found["elapsed"][0]), found["answer"]


def recorded(pd: PdDriver) -> list[Note]:
    """The phrase as the worker recorded it on Pd's clock."""
    pd.send("state")
    count = int(pd.result("phrase")[0])
    return [Note(int(p), int(v), float(t), float(t) + float(d))
            for p, v, t, d in (pd.result("recorded") for _ in range(count))]


def direct(model: MelodyModel, notes: list[Note], qpm: float, seed: int) -> tuple[float, float]:
    """(ms magenta's own generate takes for this answer after the silence's idle time, onset ms of its
    first note)."""
    sequence = primer(notes, qpm)
    sps = note_seq.steps_per_quarter_to_steps_per_second(model.steps_per_quarter, qpm)
    start = answer_start(note_seq.quantize_note_sequence(sequence, model.steps_per_quarter))
    options = generation_options(start, model.steps_in(ANSWER_S, qpm), sps)
    np.random.seed(seed)
    time.sleep(SILENCE_MS / 1000)
    t0 = time.perf_counter()
    generated = model.generator.generate(sequence, options)
    elapsed = time.perf_counter() - t0
    first = min(n.start_time for n in generated.notes if n.start_time >= start / sps - 1e-6)
    return 1000 * elapsed, 1000 * (first - start / sps)


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phrases", type=int, default=50)
    parser.add_argument("--qpm", type=float, default=120.0,
                        help="the answers' tempo (default 120: an 8 s answer is 64 steps; pretty_midi estimates "
                             "eighth-note phrases at 240, twice the steps)")
    parser.add_argument("--sleepgrain", type=float, default=1.0,
                        help="Pd's -sleepgrain in ms (default 1, as pdbridge open; Pd's own default is 5)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="pdbridge-bench-melody-"))
    with contextlib.redirect_stdout(sys.stderr):
        bundle = random_bundle("attention_rnn", work / "attention_rnn.mag")
        model = MelodyModel.load(bundle)
    hub = HubProcess(work)
    saved = pdharness.DRIVER
    pdharness.DRIVER = DRIVER
    try:
        pd = PdDriver(hub.port, "melody_rnn", timeout=300, sleepgrain=args.sleepgrain, extra_patches=[TIMER])
    finally:
        pdharness.DRIVER = saved
    result: dict = {"bench": "melody_rnn", "model": "attention_rnn default config, random weights",
                    "answer_s": ANSWER_S, "qpm": args.qpm, "silence_ms": SILENCE_MS, "phrases": args.phrases,
                    "pd_sleepgrain_ms": args.sleepgrain, "hub": "own process",
                    "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    rows = []
    try:
        t0 = time.perf_counter()
        pd.send("load", str(bundle))
        pd.result("loaded")
        result["load_s"] = round(time.perf_counter() - t0, 2)
        for setting in (["duet", 1], ["silence", SILENCE_MS], ["length", ANSWER_S, ANSWER_S]):
            pd.send(*setting)
        rng = np.random.default_rng(0)
        for i in range(args.phrases + 1):  # the first is a warm-up
            pd.send("options", "--qpm", args.qpm, "--seed", i)
            pd.result("options")
            scenario = work / f"phrase-{i}.txt"
            scenario.write_text("".join(f"{line};\n" for line in phrase_lines(rng)))
            pd._send("qlist", str(scenario))
            elapsed, (count, seconds, qpm, model_ms) = answered(pd)
            direct_ms, first_onset_ms = direct(model, recorded(pd), float(qpm), i)
            latency = elapsed - first_onset_ms
            if i:
                rows.append({"latency_ms": round(latency, 2), "elapsed_ms": round(elapsed, 2),
                             "first_onset_ms": round(first_onset_ms, 2), "model_ms": model_ms,
                             "overhead_ms": round(latency - model_ms, 2), "direct_ms": round(direct_ms, 2),
                             "minus_direct_ms": round(latency - direct_ms, 2), "notes": int(count),
                             "answer_s": seconds})
    finally:
        pd.close()
        hub.stop()
        model.close()
        shutil.rmtree(work, ignore_errors=True)
    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 1)

    latency = [r["latency_ms"] for r in rows]
    result.update({
        "latency_median_ms": median("latency_ms"), "latency_p99_ms": percentile(latency, 99),
        "latency_max_ms": round(max(latency), 1), "model_median_ms": median("model_ms"),
        "overhead_median_ms": median("overhead_ms"),
        "overhead_p90_ms": percentile([r["overhead_ms"] for r in rows], 90),
        "direct_median_ms": median("direct_ms"), "minus_direct_median_ms": median("minus_direct_ms"),
        "answers_starting_with_a_rest": sum(r["first_onset_ms"] > 0 for r in rows),
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)], "per_phrase": rows})
    print(json.dumps(result, indent=2))
    print(f"SUMMARY melody_rnn: phrase end -> first answer note {result['latency_median_ms']} ms median, "
          f"{result['latency_p99_ms']} ms p99 over {len(rows)} phrases (goals <= 150 / <= 300); bridge overhead "
          f"{result['overhead_median_ms']} ms median, p90 {result['overhead_p90_ms']} (goal <= 10) around the "
          f"worker's generator ({result['model_median_ms']} ms); magenta's generator called directly "
          f"{result['direct_median_ms']} ms, latency - direct {result['minus_direct_median_ms']} ms; attention_rnn "
          f"full size, {ANSWER_S} s answer at {args.qpm:g} qpm, CPU, {os.cpu_count()} cores, "
          f"load {result['load_avg_1min'][0]}-{result['load_avg_1min'][1]}")


if __name__ == "__main__":
    main()
