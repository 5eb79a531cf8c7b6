"""Bridge latency: Pd -> hub -> worker -> Pd, measured inside Pd with [realtime].

Runs bench/patches/loop.pd headless against an in-process hub and the diagnostics worker:
  * no-op round trip (``ping``), p50/p99 over >= 1000 requests (the first 100 are warm-up);
  * landing 64 000 and 1 000 000 float32 samples in a Pd array (``noise``), minus the time the
    worker's handler spent making them (reported by the worker with each reply).
Pd's -sleepgrain (how long its scheduler sleeps when idle) bounds the round trip from below, so
each figure is given with the grain it was measured at. Prints JSON, then one summary line.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pdbridge import fudi  # noqa: E402
from pdbridge.hub import Hub  # noqa: E402
from pdbridge.pd import HEADLESS_FLAGS, PATCH_DIR, find_pd, pd_version  # noqa: E402

LOOP = Path(__file__).parent / "patches" / "loop.pd"


def run_loop(hub: Hub, message: list[str], count: int, sleepgrain: float) -> np.ndarray:
    """Per-request milliseconds as Pd measured them."""
    pd = find_pd()
    if pd is None:
        raise SystemExit("Pure Data not found")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "times.wav"
        sends = [f"pdbridge-port {hub.pd_port}", f"bench-out symbol {fudi.escape_symbol(str(out))}",
                 "bench-go " + " ".join([str(count), *message])]
        cmd = [str(pd), *HEADLESS_FLAGS, "-sleepgrain", str(sleepgrain), "-path", str(PATCH_DIR),
               "-send", "; ".join(sends), "-open", str(LOOP)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0 or not out.exists():
            raise SystemExit(f"Pd failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        times, _ = soundfile.read(out, dtype="float32")
    return times.astype(np.float64)


def percentiles(ms: np.ndarray) -> dict[str, float]:
    return {"n": int(ms.size), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "max_ms": round(float(ms.max()), 3)}


async def bench(args: argparse.Namespace) -> dict:
    hub = Hub(pd_port=0)
    await hub.start()
    results: dict = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                                 "pd": ".".join(map(str, pd_version(find_pd()) or ()))}, "runs": []}
    try:
        for grain in args.sleepgrain:
            times = await asyncio.to_thread(run_loop, hub, ["ping"], args.count + args.warmup, grain)
            stats = percentiles(times[args.warmup:])
            stats.update({"what": "no-op round trip", "sleepgrain_ms": grain,
                          "target_p99_ms": grain + 1.0, "meets_target": stats["p99_ms"] <= grain + 1.0})
            results["runs"].append(stats)
            for n, reps in ((64_000, args.array_reps), (1_000_000, max(3, args.array_reps // 5))):
                hub.timings.clear()
                times = await asyncio.to_thread(run_loop, hub, ["noise", "bench-arr", str(n), "1"], reps + 2, grain)
                worker_ms = np.array([t["worker_s"] * 1000 for t in hub.timings if t["selector"] == "noise"])
                beyond = times[2:] - worker_ms[2:]
                stats = percentiles(beyond)
                stats.update({"what": f"land {n} float32 samples, beyond worker time", "sleepgrain_ms": grain,
                              "samples": n, "total_p50_ms": round(float(np.median(times[2:])), 3),
                              "worker_p50_ms": round(float(np.median(worker_ms[2:])), 3)})
                if n == 64_000:
                    stats.update({"target_p50_ms": 6.0, "meets_target": stats["p50_ms"] <= 6.0})
                results["runs"].append(stats)
    finally:
        await hub.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="round trips measured (after warm-up)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--array-reps", type=int, default=30)
    parser.add_argument("--sleepgrain", type=float, nargs="+", default=[1.0, 5.0],
                        help="Pd -sleepgrain values in ms (5 is Pd's default with -nosound)")
    args = parser.parse_args()
    results = asyncio.run(bench(args))
    print(json.dumps(results, indent=1))
    rt = {r["sleepgrain_ms"]: r for r in results["runs"] if r["what"] == "no-op round trip"}
    land = {(r["sleepgrain_ms"], r["samples"]): r for r in results["runs"] if "samples" in r}
    g = args.sleepgrain[0]
    print(f"SUMMARY bridge: round trip p50 {rt[g]['p50_ms']} ms p99 {rt[g]['p99_ms']} ms at sleepgrain {g:g} ms "
          f"(target p99 <= {g + 1:g}); 64k samples +{land[(g, 64000)]['p50_ms']} ms beyond worker (target 6); "
          f"1M samples +{land[(g, 1000000)]['p50_ms']} ms")


if __name__ == "__main__":
    main()
