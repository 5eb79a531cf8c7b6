"""GANSynth benchmark: full-size notes through Pd against magenta's own generate, and slider latency.

Uses a checkpoint with the published ``mel_prog_hires`` architecture (7.3 M generator weights): by
default one written here by magenta's own model code with random weights (the compute does not
depend on the weights), or ``--ckpt DIR`` (e.g. the unzipped all_instruments). The hub runs in its
own process (``pdbridge serve``), as for users; Pd is headless with ``-sleepgrain 1``, as
``pdbridge open`` starts it. In the same run, interleaved so both see the same machine load (the
order alternates each repeat; calls run back to back unless ``--pause`` is given):

- ``direct``: magenta's ``Model.generate_samples_from_z`` called in this process on the same
  checkpoint, at batch size 1 (one note per call) and 8 (eight notes per call);
- ``pd``: Pd sends ``synthesize`` to [pdbridge.gansynth] (loaded with the same batch size) and
  [realtime] in bench/patches/timed.pd measures until ``synthesized``, which Pd outputs once every
  note is in its array: what a patch sees. ms per note = time per call / notes per call;
  ``pd_wall_ms`` adds this script's own round trip into Pd, for reference;
- ``slider``: GANSpace components are loaded (random orthonormal directions of conv0's 8192 values:
  the cost does not depend on them), the amplitudes array changes as a slider would change it, and
  ``synthesize`` runs with batch size 1: the time until the new note is in the Pd array;
- ``worker_peak_rss_mb_after_batchN``: the worker process's peak resident memory (VmHWM) after
  the batch-1 phase, then after the batch-8 phase (one model at a time is loaded).

Overhead is given three ways: from the medians, from the fastest call of each (the least
disturbed on a shared machine), and as the median of the per-repeat differences.

Prints one JSON object, then one summary line. Run with the tf environment's Python:
``.cache/envs/tf/bin/python bench/gansynth.py``.
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
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from pdharness import HubProcess, PdDriver  # noqa: E402
from workers.gansynth.checkpoint_random import make_checkpoint  # noqa: E402
from workers.gansynth.ganspace import Components  # noqa: E402
from workers.gansynth.model import GANSynth  # noqa: E402

ARRAYS = ROOT / "tests" / "workers" / "gansynth" / "patches" / "gansynth_arrays.pd"
TIMED = ROOT / "bench" / "patches" / "timed.pd"
PITCHES = [36, 40, 43, 48, 52, 55, 60, 64]


def random_components(shape: tuple[int, ...], count: int, seed: int = 0) -> Components:
    """Orthonormal random directions: GANSpace's cost depends on the layer size, not on the PCA."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((int(np.prod(shape)), count)))
    return Components("conv0", q.T.reshape(count, *shape), np.ones(count), np.full(count, 1.0 / count),
                      np.zeros(shape), "random_orthonormal")


def worker_peak_rss_mb(hub_pid: int) -> Optional[float]:
    """VmHWM of the gansynth worker that the hub process started."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if "workers.gansynth.worker" in cmd and ppid == hub_pid:
            kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
            return round(int(kb) / 1024, 1)
    return None


def time_direct(model: GANSynth, z: np.ndarray, pitches: list[int], pause: float) -> float:
    """Seconds for magenta's own generate."""
    time.sleep(pause)
    with contextlib.redirect_stdout(sys.stderr):  # magenta prints a line per call; stdout is the JSON
        t0 = time.perf_counter()
        model.model.generate_samples_from_z(z, pitches)
        return time.perf_counter() - t0


def time_pd(pd: PdDriver, args: list, pause: float) -> tuple[float, float]:
    """Seconds from Pd's ``synthesize`` to its ``synthesized`` as Pd measured it, and as seen from here."""
    time.sleep(pause)
    t0 = time.perf_counter()
    pd.send("synthesize", *args)
    elapsed_ms = pd.result("elapsed")[0]  # bench/patches/timed.pd, after the result came out
    return float(elapsed_ms) / 1000, time.perf_counter() - t0


def notes(count: int, z_array: str = "gz-1") -> list:
    args: list = []
    for i in range(count):
        args += [z_array, f"gs-{i + 1}", PITCHES[i]]
    return args


def ms(values: list[float], per: int = 1) -> list[float]:
    return [round(1000 * v / per, 1) for v in values]


def compare(direct: list[float], through_pd: list[float], wall: list[float], per: int) -> dict:
    d, p = statistics.median(direct), statistics.median(through_pd)
    return {"direct_ms_per_note": ms(direct, per), "pd_ms_per_note": ms(through_pd, per),
            "pd_wall_ms_per_note": ms(wall, per),
            "direct_median_ms": round(1000 * d / per, 1), "pd_median_ms": round(1000 * p / per, 1),
            "overhead_pct": round(100 * (p - d) / d, 2),
            "overhead_pct_best": round(100 * (min(through_pd) - min(direct)) / min(direct), 2),
            "overhead_pct_paired": round(100 * statistics.median(
                [(tp - td) / td for tp, td in zip(through_pd, direct)]), 2)}


def slider(pd: PdDriver, direct_model: GANSynth, z1: np.ndarray, work: Path, moves: int, pause: float) -> dict:
    """A slider moves (the amplitudes array changes), then one note: how long until it is in Pd."""
    comps = random_components(direct_model.layer_shape("conv0"), 11)
    pca = comps.save(work / "random_conv0.npz")
    pd.send("load_ganspace_components", str(pca), "gamps")
    pd.result("loaded_pca")
    times = []
    for i in range(moves + 1):
        amps = np.zeros(11, np.float32)
        amps[i % 11] = 1.0 + 0.25 * i
        pd.write_array("gamps", amps)  # the slider has moved: the array holds the new value
        times.append(time_pd(pd, ["gz-1", "gs-1", 32], pause)[0])
    times = times[1:]
    direct_edit = []
    for i in range(moves):
        time.sleep(pause)
        t0 = time.perf_counter()
        direct_model.generate(z1[:1], [32], offsets=("conv0", comps.offset(np.eye(11)[i % 11])))
        direct_edit.append(time.perf_counter() - t0)
    return {"pd_ms": ms(times), "pd_median_ms": round(1000 * statistics.median(times), 1),
            "direct_edit_median_ms": round(1000 * statistics.median(direct_edit), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", type=Path,
                        help="a GANSynth checkpoint folder (default: build a random full-size one)")
    parser.add_argument("--notes", type=int, default=120,
                        help="notes timed each way at each batch size (the machine's noise is about +-10 %% a call, "
                             "so a 5 %% question needs many)")
    parser.add_argument("--slider-moves", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds of idle before each timed call (default 0: back to back; an idle "
                             "machine slows the first milliseconds of any call, through Pd or not)")
    parser.add_argument("--sleepgrain", type=float, default=1.0,
                        help="Pd's -sleepgrain in ms (default 1, as pdbridge open; Pd's own default is 5)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="pdbridge-bench-gansynth-"))
    ckpt = args.ckpt
    if ckpt is None:
        with contextlib.redirect_stdout(sys.stderr):
            ckpt = make_checkpoint(work / "full")

    hub = HubProcess(work)
    pd = PdDriver(hub.port, "gansynth", timeout=900, sleepgrain=args.sleepgrain, extra_patches=[ARRAYS, TIMED])
    result: dict = {"bench": "gansynth", "model": str(args.ckpt) if args.ckpt else "mel_prog_hires random weights",
                    "notes": args.notes, "pause_s": args.pause, "pd_sleepgrain_ms": args.sleepgrain,
                    "hub": "own process",
                    "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    try:
        z = np.random.default_rng(0).standard_normal((8, 256))
        pd.write_array("gz-1", z[0].astype(np.float32))
        z1 = np.repeat(pd.read_array("gz-1").astype(np.float64)[None], 8, axis=0)
        for batch in (1, 8):
            t0 = time.perf_counter()
            pd.send("load", str(ckpt), batch)
            pd.result("loaded")
            result[f"load_s_batch{batch}"] = round(time.perf_counter() - t0, 2)
            direct_model = GANSynth.load(ckpt, batch_size=batch)
            time_direct(direct_model, z1[:batch], PITCHES[:batch], 0)  # warm-up: first runs allocate
            time_pd(pd, notes(batch), 0)
            direct, through_pd, wall = [], [], []
            calls = max(5, args.notes // batch)
            result[f"calls_batch{batch}"] = calls
            for i in range(calls):
                for first in ([0, 1] if i % 2 == 0 else [1, 0]):
                    if first == 0:
                        direct.append(time_direct(direct_model, z1[:batch], PITCHES[:batch], args.pause))
                    else:
                        inside, outside = time_pd(pd, notes(batch), 0)
                        through_pd.append(inside)
                        wall.append(outside)
            result[f"batch{batch}"] = compare(direct, through_pd, wall, batch)
            if batch == 1:
                result["slider"] = slider(pd, direct_model, z1, work, args.slider_moves, args.pause)
            direct_model.close()
            del direct_model
            # VmHWM only grows: after batch 1 it is that model's peak, after batch 8 the larger one's.
            result[f"worker_peak_rss_mb_after_batch{batch}"] = worker_peak_rss_mb(hub.proc.pid)
    finally:
        pd.close()
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)  # the built checkpoint is 228 MB
    result["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result, indent=2))
    b1, b8, s = result["batch1"], result["batch8"], result["slider"]
    print(f"gansynth full-size CPU ({os.cpu_count()} cores, Pd grain {args.sleepgrain:g} ms): batch 1 "
          f"{b1['pd_median_ms']:.0f} ms/note through Pd vs {b1['direct_median_ms']:.0f} direct "
          f"({b1['overhead_pct']:+.1f} %, best {b1['overhead_pct_best']:+.1f} %, "
          f"paired {b1['overhead_pct_paired']:+.1f} %); "
          f"batch 8 {b8['pd_median_ms']:.0f} vs {b8['direct_median_ms']:.0f} ms/note ({b8['overhead_pct']:+.1f} %, "
          f"best {b8['overhead_pct_best']:+.1f} %, paired {b8['overhead_pct_paired']:+.1f} %); "
          f"slider -> array {s['pd_median_ms']:.0f} ms (goal <= 300); "
          f"worker peak RSS {result['worker_peak_rss_mb_after_batch1']} MB at batch 1, "
          f"{result['worker_peak_rss_mb_after_batch8']} MB with batch 8 (goal overhead <= 5 %)")


if __name__ == "__main__":
    main()
