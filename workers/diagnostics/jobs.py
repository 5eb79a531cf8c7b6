"""The diagnostics job: counts down, checkpointing as a training job would, so jobs can be tested."""
from __future__ import annotations

import json
import time

from workers.runtime.jobrun import JobContext

TICK_S = 0.05


def countdown(job: JobContext) -> None:
    """Count ``seconds`` down in ticks; save the count after each tick; resume from the saved count."""
    total = float(job.config["seconds"])
    checkpoint = job.output / "checkpoint.json"
    done = json.loads(checkpoint.read_text())["done"] if job.resume and checkpoint.exists() else 0.0
    if done:
        job.log(f"resuming at {done:.2f} of {total:g} s")
    while done < total:
        if job.should_stop:
            return
        time.sleep(TICK_S)
        done = min(total, done + TICK_S)
        checkpoint.write_text(json.dumps({"done": done}))
        job.progress(done / total, f"{total - done:.1f} s left")
    job.result(counted=total)
