"""DDSP benchmark: a 10 s clip through [pdbridge.ddsp] against ddsp's own path, per stage.

Model: the full-size ``models/solo_instrument.gin`` (4.85 M weights) written here with random
weights by ddsp's own code (the compute does not depend on the weights), or ``--model DIR``.
Input: a 10 s synthetic melody at 44.1 kHz. In one run:

- ``ddsp_own``: what the course's handler and the colab do, in this process: ``compute_audio_features``
  (CREPE full with Viterbi, loudness), then build ``Autoencoder`` for the clip's length, restore,
  call it (decoder and synthesis). ``--skip-own`` leaves out the CREPE-full part (minutes).
- ``stages``: our stages in this process on the same clip: f0 (CREPE tiny, the default), loudness,
  decoder, synthesis (each the median of ``--repeat`` calls).
- ``pd``: Pd sends ``run`` to [pdbridge.ddsp] (model loaded first) and this script times until
  ``transferred`` comes out of the object (the output is in its array by then): the first run of
  the clip, then re-runs with other sliders (the features are cached: decoder and synthesis only).
  The hub runs in its own process, Pd headless with ``-sleepgrain 1``, as ``pdbridge open`` runs them.
- ``worker_peak_rss_mb``: the worker's peak resident memory (VmHWM).

Prints one JSON object, then one line starting ``SUMMARY ddsp:``. Takes about 2-3 minutes on
2 cores (6-8 with CREPE full). Run with the tf environment's Python: ``.cache/envs/tf/bin/python bench/ddsp.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
# this file is called ddsp.py: its own folder must not shadow the ddsp package
sys.path[:] = [str(ROOT), str(ROOT / "tests")] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import workers.ddsp  # noqa: E402,F401
from pdharness import HubProcess, PdDriver  # noqa: E402
from workers.ddsp import features as feats  # noqa: E402
from workers.ddsp import model as ddsp_model  # noqa: E402
from workers.ddsp import pitch  # noqa: E402
from workers.ddsp.training import synthetic_tone, write_random  # noqa: E402
from workers.runtime.resample import resample  # noqa: E402

ARRAYS = ROOT / "tests" / "workers" / "ddsp" / "patches" / "ddsp_arrays.pd"
SR = 44100


def clip(seconds: float = 10.0) -> np.ndarray:
    """A melody of half-second notes between A3 and E5 at 44.1 kHz."""
    rng = np.random.default_rng(0)
    per = 25
    notes = rng.integers(57, 77, int(seconds * 2) + 1)
    f0 = np.repeat(440.0 * 2 ** ((notes - 69) / 12), per)[: int(seconds * 50) + 1]
    env = np.tile(np.sin(np.linspace(0.2, np.pi - 0.2, per)) ** 0.5 * 0.6, len(notes))[: len(f0)]
    return synthetic_tone(f0, env, 50, seed=0, sample_rate=SR)


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ddsp_own(folder: Path, audio16: np.ndarray, with_crepe_full: bool) -> dict:
    """The course handler's / colab's path on the same clip (CREPE full only if asked: minutes)."""
    import ddsp.training
    import tensorflow as tf

    out: dict = {}
    if with_crepe_full:
        start = time.perf_counter()
        ddsp.training.metrics.compute_audio_features(audio16)
        out["features_crepe_full_s"] = time.perf_counter() - start
    start = time.perf_counter()
    model = ddsp_model.load(folder)
    info = model.info
    n = info.n_frames(len(audio16))
    features = feats.compute(audio16, audio16, info, "tiny")
    with ddsp_model.GIN_LOCK:
        ddsp_model.configure_gin(folder, n_samples=n * info.hop, time_steps=n)
        import gin

        with gin.unlock_config():
            gin.parse_config(["F0LoudnessPreprocessor.compute_loudness = False"])
        ae = ddsp.training.models.Autoencoder()
    ae.restore(str(ddsp_model.newest_checkpoint(folder)[0]), verbose=False)
    batch = {"f0_hz": tf.constant(features.f0_hz[None]), "loudness_db": tf.constant(features.level_db[None])}
    ae(batch, training=False)
    out["build_and_first_call_s"] = time.perf_counter() - start
    out["autoencoder_call_s"] = timed(lambda: ae(batch, training=False), 3)
    return out


def worker_peak_rss_mb() -> Optional[float]:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "workers.ddsp.worker" in cmd:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            continue
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a DDSP model folder (default: full-size random solo_instrument)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-own", action="store_true", help="skip ddsp's CREPE full (minutes)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ddsp-"))
    folder = args.model or write_random(work / "solo_instrument", "models/solo_instrument.gin")
    audio = clip(args.seconds)
    audio16 = resample(audio, SR, 16000)
    result: dict = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "seconds": args.seconds, "model": str(folder)}

    model = ddsp_model.load(folder)
    info = model.info
    stages = {"f0_tiny_s": timed(lambda: pitch.track(audio16, info.frame_rate, "tiny"), args.repeat),
              "loudness_s": timed(lambda: feats.level_db(audio16, info), args.repeat)}
    features = feats.compute(audio16, audio16, info, "tiny")
    f0, level = feats.transfer(features, feats.Settings(), None)
    controls = model.controls(f0, level)
    stages["decoder_s"] = timed(lambda: model.controls(f0, level), args.repeat)
    stages["synthesis_s"] = timed(lambda: model.synthesize(controls, f0), args.repeat)
    result["stages"] = stages
    result["ddsp_own"] = ddsp_own(folder, audio16, not args.skip_own)
    del model

    hub = HubProcess(work)
    import pdharness

    pdharness.HEADLESS_FLAGS = (*pdharness.HEADLESS_FLAGS, "-open", str(ARRAYS))
    pd = PdDriver(hub.port, "ddsp", timeout=900, sleepgrain=1)
    try:
        start = time.perf_counter()
        pd.send("load", str(folder))
        pd.result("loaded")
        load_s = time.perf_counter() - start
        pd.write_array("dd-in", audio)

        def run(*options: object) -> float:
            start = time.perf_counter()
            pd.send("transfer", "dd-in", "dd-out", "--sr", SR, *options)
            pd.result("transferred")
            return time.perf_counter() - start

        first = run()
        reruns = [run("--octave", o, "--loudness", ld) for o, ld in ((1, 0), (0, -6), (-1, 3), (0, 6), (1, -3))]
        assert len(pd.read_array("dd-out")) == int(args.seconds * 16000) // info.hop * info.hop
        result["pd"] = {"load_s": load_s, "first_run_s": first, "rerun_median_s": statistics.median(reruns),
                        "reruns_s": reruns, "realtime_factor_first_run": args.seconds / first}
        result["worker_peak_rss_mb"] = worker_peak_rss_mb()
    finally:
        pd.close()
        hub.stop()
    print(json.dumps(result, indent=1))
    own = result["ddsp_own"]
    own_text = f"crepe full {own['features_crepe_full_s']:.1f} s, " if "features_crepe_full_s" in own else ""
    print(f"SUMMARY ddsp: {args.seconds:g} s clip, full-size solo_instrument, {os.cpu_count()} CPUs: through Pd "
          f"first run {first:.2f} s ({args.seconds / first:.1f}x realtime), re-run with other sliders "
          f"{result['pd']['rerun_median_s']:.2f} s; stages f0 (CREPE tiny) {stages['f0_tiny_s']:.2f} s, loudness "
          f"{stages['loudness_s']:.2f} s, decoder {stages['decoder_s']:.2f} s, synthesis {stages['synthesis_s']:.2f} s; "
          f"ddsp's own path: {own_text}Autoencoder call {own['autoencoder_call_s']:.2f} s; worker peak "
          f"{result['worker_peak_rss_mb'] or 0:.0f} MB")


if __name__ == "__main__":
    main()
