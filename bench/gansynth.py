"""GANSynth benchmark: full-size notes through Pd against magenta's own generate, and slider latency.

Uses a checkpoint with the published ``mel_prog_hires`` architecture (7.3 M generator weights): by
default one written here by magenta's own model code with random weights (the compute does not
depend on the weights), or ``--ckpt DIR`` (e.g. the unzipped all_instruments). In the same run,
interleaved so both see the same machine load:

- ``direct``: magenta's ``Model.generate_samples_from_z`` called in this process on the same
  checkpoint, at batch size 1 (one note per call) and 8 (eight notes per call);
- ``pd``: a headless Pd sends ``synthesize`` to [pdbridge.gansynth] (loaded with the same batch
  size) and waits for ``synthesized``, which Pd outputs once every note has landed in its array;
  ms per note = time per call / notes per call;
- ``slider``: GANSpace components are loaded (random orthonormal directions of conv0's 8192 values:
  the cost does not depend on them), the amplitudes array changes as a slider would change it, and
  ``synthesize`` runs with batch size 1: the time until the new note is in the Pd array;
- ``worker_peak_rss_mb_after_batchN``: the worker process's peak resident memory (VmHWM) after
  the batch-1 phase, then after the batch-8 phase (one model at a time is loaded).

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

import pdharness  # noqa: E402
from pdharness import HubThread, PdDriver  # noqa: E402
from workers.gansynth.checkpoint_random import make_checkpoint  # noqa: E402
from workers.gansynth.ganspace import Components  # noqa: E402
from workers.gansynth.model import GANSynth  # noqa: E402

ARRAYS = ROOT / "tests" / "workers" / "gansynth" / "patches" / "gansynth_arrays.pd"
PITCHES = [36, 40, 43, 48, 52, 55, 60, 64]


def random_components(shape: tuple[int, ...], count: int, seed: int = 0) -> Components:
    """Orthonormal random directions: GANSpace's cost depends on the layer size, not on the PCA."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((int(np.prod(shape)), count)))
    return Components("conv0", q.T.reshape(count, *shape), np.ones(count), np.full(count, 1.0 / count),
                      np.zeros(shape), "random_orthonormal")


def worker_peak_rss_mb() -> Optional[float]:
    """VmHWM of the gansynth worker the hub (a thread of this process) started."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if "workers.gansynth.worker" in cmd and ppid == os.getpid():
            kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
            return round(int(kb) / 1024, 1)
    return None


def time_direct(model: GANSynth, z: np.ndarray, pitches: list[int]) -> float:
    with contextlib.redirect_stdout(sys.stderr):  # magenta prints a line per call; stdout is the JSON
        t0 = time.perf_counter()
        model.model.generate_samples_from_z(z, pitches)
        return time.perf_counter() - t0


def time_pd(pd: PdDriver, notes: int) -> float:
    args: list = []
    for i in range(notes):
        args += ["gz-1", f"gs-{i + 1}", PITCHES[i]]
    t0 = time.perf_counter()
    pd.send("synthesize", *args)
    pd.result("synthesized")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", type=Path, help="a GANSynth checkpoint folder (default: build a random full-size one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sleepgrain", type=float, default=None, help="Pd's -sleepgrain in ms (default Pd's 5)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="pdbridge-bench-gansynth-"))
    ckpt = args.ckpt
    if ckpt is None:
        with contextlib.redirect_stdout(sys.stderr):
            ckpt = make_checkpoint(work / "full")

    hub = HubThread(log_dir=work)
    saved = pdharness.HEADLESS_FLAGS
    pdharness.HEADLESS_FLAGS = (*saved, "-open", str(ARRAYS))
    pd = PdDriver(hub.port, "gansynth", timeout=900, sleepgrain=args.sleepgrain)
    pdharness.HEADLESS_FLAGS = saved
    result: dict = {"bench": "gansynth", "model": str(args.ckpt) if args.ckpt else "mel_prog_hires random weights",
                    "repeats": args.repeats, "pd_sleepgrain_ms": args.sleepgrain or 5,
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
            time_direct(direct_model, z1[:batch], PITCHES[:batch])  # warm-up: first runs allocate
            time_pd(pd, batch)
            direct, through_pd = [], []
            for _ in range(args.repeats):
                direct.append(time_direct(direct_model, z1[:batch], PITCHES[:batch]) / batch)
                through_pd.append(time_pd(pd, batch) / batch)
            d, p = statistics.median(direct), statistics.median(through_pd)
            result[f"batch{batch}"] = {
                "direct_ms_per_note": [round(1000 * t, 1) for t in direct],
                "pd_ms_per_note": [round(1000 * t, 1) for t in through_pd],
                "direct_median_ms": round(1000 * d, 1), "pd_median_ms": round(1000 * p, 1),
                "overhead_pct": round(100 * (p - d) / d, 2),
                # The machine is shared: the fastest repeat of each is the least disturbed estimate.
                "overhead_pct_best": round(100 * (min(through_pd) - min(direct)) / min(direct), 2)}
            if batch == 1:
                comps = random_components(direct_model.layer_shape("conv0"), 11)
                pca = comps.save(work / "random_conv0.npz")
                pd.send("load_ganspace_components", str(pca), "gamps")
                pd.result("loaded_pca")
                slider = []
                for i in range(args.repeats + 1):
                    amps = np.zeros(11, np.float32)
                    amps[i % 11] = 1.0 + 0.25 * i
                    pd.write_array("gamps", amps)  # the slider has moved: the array holds the new value
                    t0 = time.perf_counter()
                    pd.send("synthesize", "gz-1", "gs-1", 32)
                    pd.result("synthesized")
                    slider.append(time.perf_counter() - t0)
                slider = slider[1:]
                direct_edit = []
                for i in range(args.repeats):
                    t0 = time.perf_counter()
                    direct_model.generate(z1[:1], [32], offsets=("conv0", comps.offset(np.eye(11)[i % 11])))
                    direct_edit.append(time.perf_counter() - t0)
                result["slider"] = {"pd_ms": [round(1000 * t, 1) for t in slider],
                                    "pd_median_ms": round(1000 * statistics.median(slider), 1),
                                    "direct_edit_median_ms": round(1000 * statistics.median(direct_edit), 1)}
            direct_model.close()
            del direct_model
            # VmHWM only grows: after batch 1 it is that model's peak, after batch 8 the larger one's.
            result[f"worker_peak_rss_mb_after_batch{batch}"] = worker_peak_rss_mb()
    finally:
        pd.close()
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)  # the built checkpoint is 228 MB
    result["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result, indent=2))
    b1, b8, s = result["batch1"], result["batch8"], result["slider"]
    print(f"gansynth full-size CPU ({os.cpu_count()} cores): batch 1 {b1['pd_median_ms']:.0f} ms/note through Pd vs "
          f"{b1['direct_median_ms']:.0f} direct ({b1['overhead_pct']:+.1f} %, best {b1['overhead_pct_best']:+.1f} %); "
          f"batch 8 {b8['pd_median_ms']:.0f} vs {b8['direct_median_ms']:.0f} ms/note ({b8['overhead_pct']:+.1f} %, "
          f"best {b8['overhead_pct_best']:+.1f} %); slider -> array {s['pd_median_ms']:.0f} ms (goal <= 300); "
          f"worker peak RSS {result['worker_peak_rss_mb_after_batch1']} MB at batch 1, "
          f"{result['worker_peak_rss_mb_after_batch8']} MB with batch 8 (goal overhead <= 5 %)")


if __name__ == "__main__":
    main()
