"""Train a SampleRNN on a folder of audio: ``python -m workers.samplernn.train --help``.

Example (the course's recommended model, 8 s chunks overlapping by 1 s)::

    python -m workers.samplernn.train --data_dir my_sounds --output_dir runs/mine \\
        --config lstm-linear-skip.config.json --sample_rate 16000 --batch_size 32

Training follows PRiSM's recipe: each chunk starts with one big frame of silence, is cut into
``seq_len`` windows trained with truncated back-propagation through time (RNN states carried from
window to window of the same chunks), cross-entropy on the next sample's class, Adam (lr 1e-3,
eps 1e-4) and gradient clipping at global norm 5. After every epoch the validation loss and
accuracy are printed and logged; checkpoints go to ``output_dir/checkpoint-<step>.pt`` with the
config beside them, and running the same command again resumes from the newest one.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import CONFIG_NAME, pdbridge_checkpoints, read_checkpoint, save_checkpoint
from .config import SampleRNNConfig
from .data import Corpus, batches, build_corpus, subsequences
from .model import SampleRNN, detach_state
from .quantize import quantize, zero_class


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m workers.samplernn.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", type=Path, required=True, help="folder of audio files (searched recursively)")
    p.add_argument("--output_dir", type=Path, required=True, help="run folder for checkpoints and logs")
    p.add_argument("--config", type=Path, help="PRiSM-style *.config.json (default: PRiSM's defaults)")
    p.add_argument("--sample_rate", type=int, help="rate to train at (default: the config's, else 16000)")
    p.add_argument("--chunk_length", type=float, default=8.0, help="chunk length in seconds (8)")
    p.add_argument("--chunk_overlap", type=float, default=1.0, help="overlap of chunks in seconds (1)")
    p.add_argument("--batch_size", type=int, default=32, help="chunks per batch (32)")
    p.add_argument("--num_epochs", type=int, default=100, help="epochs to train (100)")
    p.add_argument("--max_steps", type=int, help="stop after this many optimizer steps in total")
    p.add_argument("--val_frac", type=float, default=0.1, help="fraction held out for validation (0.1)")
    p.add_argument("--learning_rate", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    p.add_argument("--checkpoint_every", type=int, default=1, help="save every N epochs (1)")
    p.add_argument("--max_checkpoints", type=int, default=5, help="keep the newest N checkpoints (5; 0 = all)")
    p.add_argument("--no_resume", action="store_true", help="refuse to continue an existing run")
    p.add_argument("--log_every", type=int, default=20, help="print progress every N steps (20)")
    p.add_argument("--seed", type=int, default=0, help="random seed for initialisation and shuffling")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    return p.parse_args(argv)


def _quantized_batch(group: list[np.ndarray], config: SampleRNNConfig) -> torch.Tensor:
    q = quantize(np.stack(group), config.q_type, config.q_levels)
    pad = np.full((q.shape[0], config.big_frame_size), zero_class(config.q_levels), dtype=np.int64)
    return torch.from_numpy(np.concatenate([pad, q], axis=1))


def run_epoch(model: SampleRNN, chunks: list[np.ndarray], batch_size: int, rng: random.Random,
              device: torch.device, optimizer: Optional[torch.optim.Optimizer] = None,
              on_step: Optional[Callable[[float], None]] = None,
              max_steps: Optional[int] = None) -> tuple[float, float, int]:
    """One pass over ``chunks``: training if an optimizer is given, else evaluation.

    Returns mean loss (nats per sample), accuracy, and steps taken.
    """
    config = model.config
    model.train(optimizer is not None)
    total_loss = total_correct = total_count = 0.0
    steps = 0
    for group in batches(chunks, batch_size, shuffle=optimizer is not None, rng=rng):
        q = _quantized_batch(group, config).to(device)
        state = None
        for window, _first in subsequences(q, config.seq_len, config.big_frame_size):
            if max_steps is not None and steps >= max_steps:
                break
            with torch.set_grad_enabled(optimizer is not None):
                logits, state = model(window, state)
                target = window[:, config.big_frame_size:]
                loss = F.cross_entropy(logits.reshape(-1, config.q_levels), target.reshape(-1))
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
                steps += 1
            state = detach_state(state)
            n = target.numel()
            total_loss += loss.item() * n
            total_correct += (logits.argmax(-1) == target).sum().item()
            total_count += n
            if on_step is not None and optimizer is not None:
                on_step(loss.item())
    if total_count == 0:
        return math.nan, math.nan, steps
    return total_loss / total_count, total_correct / total_count, steps


def _prune(folder: Path, keep: int) -> None:
    if keep > 0:
        for _step, path in pdbridge_checkpoints(folder)[:-keep]:
            path.unlink()


def train(args: argparse.Namespace) -> Path:
    """Run training as described by the parsed command line; returns the last checkpoint path."""
    out: Path = args.output_dir
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    existing = pdbridge_checkpoints(out)
    resume = read_checkpoint(existing[-1][1]) if existing else None
    if resume is not None and args.no_resume:
        raise SystemExit(f"{out} already holds checkpoints; choose another --output_dir or drop --no_resume")
    if resume is not None:
        config = SampleRNNConfig.from_dict(resume["config"])
        print(f"resuming from {existing[-1][1]} (step {resume['training']['step']})", flush=True)
    else:
        config = SampleRNNConfig.from_json(args.config) if args.config else SampleRNNConfig()
        if args.sample_rate:
            config = config.with_changes(sample_rate=args.sample_rate)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    corpus: Corpus = build_corpus(args.data_dir, config.sample_rate, args.chunk_length,
                                  args.chunk_overlap, args.val_frac, args.seed)
    if min(len(c) for c in corpus.train) < config.seq_len:
        raise SystemExit(f"chunks are shorter than seq_len={config.seq_len} samples; use longer chunks")
    print(f"{len(corpus.train)} training chunks, {len(corpus.val)} validation chunks at "
          f"{config.sample_rate} Hz", flush=True)

    model = SampleRNN(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, eps=1e-4)
    step, epoch = 0, 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["training"]["optimizer"])
        step, epoch = resume["training"]["step"], resume["training"]["epoch"]
        rng.seed(args.seed + epoch)
    out.mkdir(parents=True, exist_ok=True)
    config.to_json(out / CONFIG_NAME)
    log_path = out / "train_log.jsonl"
    last = existing[-1][1] if existing else None
    started = time.time()
    first_step = step

    def on_step(loss: float) -> None:
        nonlocal step
        step += 1
        if step % args.log_every == 0:
            rate = (step - first_step) / max(time.time() - started, 1e-9)
            print(f"epoch {epoch + 1} step {step} loss {loss:.4f} ({rate:.2f} steps/s)", flush=True)

    while epoch < args.num_epochs and (args.max_steps is None or step < args.max_steps):
        remaining = None if args.max_steps is None else args.max_steps - step
        loss, acc, _ = run_epoch(model, corpus.train, args.batch_size, rng, device, optimizer,
                                 on_step, remaining)
        val_loss, val_acc, _ = (run_epoch(model, corpus.val, args.batch_size, rng, device)
                                if corpus.val else (math.nan, math.nan, 0))
        epoch += 1
        record = {"epoch": epoch, "step": step, "loss": loss, "accuracy": acc,
                  "val_loss": val_loss, "val_accuracy": val_acc, "seconds": time.time() - started}
        print(f"epoch {epoch}: loss {loss:.4f} acc {acc:.3f} | val_loss {val_loss:.4f} "
              f"val_acc {val_acc:.3f}", flush=True)
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        done = epoch >= args.num_epochs or (args.max_steps is not None and step >= args.max_steps)
        if epoch % args.checkpoint_every == 0 or done:
            last = out / f"checkpoint-{step}.pt"
            save_checkpoint(last, model, {"step": step, "epoch": epoch, "optimizer": optimizer.state_dict(),
                                          "loss": loss, "val_loss": val_loss})
            _prune(out, args.max_checkpoints)
            print(f"saved {last}", flush=True)
    if last is None:
        raise SystemExit("nothing was trained (num_epochs or max_steps is 0)")
    return last


def main(argv: Optional[Sequence[str]] = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
