"""GANSpace for GANSynth: principal directions of one generator layer, and timbre edits along them.

GANSpaceSynth (Härkönen et al.'s GANSpace applied to GANSynth) samples many random latent vectors,
records the activation of an early generator layer (``conv0``) for each, and runs PCA on those
activations. Moving a layer activation along principal component ``k`` by ``amp * stdev_k``
changes the timbre in a consistent way; sliders on the first components become a synth panel.

The PCA here is computed in batches with memory bounded by the layer size, not the sample count:
the mean and the scatter matrix are accumulated batch by batch (Chan et al.'s pairwise update, in
float64) and diagonalised once at the end. For ``conv0`` of the published models (8192 values)
that is a 512 MiB matrix whatever the number of random z.

Results are written as ``.npz`` (numpy arrays and strings only; loading never runs code). The
course published its components as ``.pickle`` files with keys ``layer, estimator, comp, stdev,
var_ratio, global_mean``; unpickling can run arbitrary code, so those are read only when the user
explicitly allows it, and even then only numpy arrays, numbers and strings are accepted.

CLI (``python -m workers.gansynth.ganspace``):
  compute CKPT [--layer conv0] [--random-z-count 8192] [--batch-size 64] [--seed 0] [--pitch P]
               [--components K] [--out FILE.npz]
  convert IN.pickle OUT.npz --trust-pickle
  info FILE
"""
from __future__ import annotations

import argparse
import io
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .model import GANSynth

Progress = Callable[[float], None]

ESTIMATOR = "batched_covariance_eigh"
MAX_LAYER_SIZE = 16384
"""Largest layer PCA is run on: the scatter matrix of 16384 values already takes 2 GiB."""
PICKLE_SUFFIXES = (".pickle", ".pkl")
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "str"),
    ("builtins", "float"), ("builtins", "int"),
}


class ComponentsError(Exception):
    """The components file cannot be used; the message says why and what to do."""


@dataclass
class Components:
    """Principal directions of one generator layer, strongest first.

    ``comp``: (k, *layer_shape) unit vectors; ``stdev``: (k,) standard deviation of the
    activations along each; ``var_ratio``: (k,) share of the total variance; ``global_mean``:
    (*layer_shape) mean activation.
    """

    layer: str
    comp: np.ndarray
    stdev: np.ndarray
    var_ratio: np.ndarray
    global_mean: np.ndarray
    estimator: str = ESTIMATOR
    info: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.comp = np.asarray(self.comp, np.float32)
        self.stdev = np.asarray(self.stdev, np.float32).reshape(-1)
        self.var_ratio = np.asarray(self.var_ratio, np.float32).reshape(-1)
        self.global_mean = np.asarray(self.global_mean, np.float32)
        k = len(self.comp)
        if self.global_mean.shape != self.comp.shape[1:] and self.global_mean.size == self.comp[0].size:
            self.global_mean = self.global_mean.reshape(self.comp.shape[1:])  # course files keep (1, D)
        if len(self.stdev) != k or len(self.var_ratio) != k or self.global_mean.shape != self.comp.shape[1:]:
            raise ComponentsError(
                f"inconsistent components: comp {self.comp.shape}, stdev {self.stdev.shape}, "
                f"var_ratio {self.var_ratio.shape}, global_mean {self.global_mean.shape}")

    @property
    def count(self) -> int:
        return len(self.comp)

    @property
    def layer_shape(self) -> tuple[int, ...]:
        return tuple(self.comp.shape[1:])

    def _amounts(self, amplitudes: Sequence[float]) -> np.ndarray:
        amps = np.asarray(amplitudes, np.float64).reshape(-1)
        if len(amps) > self.count:
            raise ValueError(f"{len(amps)} amplitudes for {self.count} components")
        return np.pad(amps, (0, self.count - len(amps))) * self.stdev

    def offset(self, amplitudes: Sequence[float]) -> np.ndarray:
        """``sum_k amp_k * stdev_k * comp_k``: the change to the layer for slider values ``amp``.

        Fewer amplitudes than components leave the rest at 0, so a panel of 11 sliders works with
        a file of 8192 components.
        """
        amounts = self._amounts(amplitudes)
        used = np.flatnonzero(amounts)
        flat = self.comp.reshape(self.count, -1)
        return (amounts[used] @ flat[used]).reshape(self.layer_shape).astype(np.float32)

    def layer_values(self, amplitudes: Sequence[float]) -> np.ndarray:
        """The layer activation ``global_mean + offset(amp)``: a sound without a latent vector."""
        return self.global_mean + self.offset(amplitudes)

    def save(self, path: Path) -> Path:
        """Write a ``.npz`` that loads without pickle."""
        path = Path(path)
        with open(path, "wb") as f:
            np.savez(f, layer=np.str_(self.layer), estimator=np.str_(self.estimator), comp=self.comp,
                     stdev=self.stdev, var_ratio=self.var_ratio, global_mean=self.global_mean,
                     info_keys=np.array(list(self.info), dtype=str),
                     info_values=np.array([str(v) for v in self.info.values()], dtype=str))
        return path


def load_components(path: Path, allow_pickle: bool = False) -> Components:
    """Read a ``.npz`` written by :meth:`Components.save`, or a course ``.pickle`` if allowed."""
    path = Path(path)
    if not path.is_file():
        raise ComponentsError(f"components file not found: {path}")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise ComponentsError(
                f"{path.name} is a pickle file, and loading a pickle can run code hidden in it. "
                "If you trust where it came from, convert it once with: python -m workers.gansynth.ganspace "
                f"convert {path} {path.with_suffix('.npz')} --trust-pickle (or load it with --allow_pickle 1)")
        return _from_mapping(_restricted_unpickle(path.read_bytes(), path), path)
    try:
        with np.load(path, allow_pickle=False) as data:
            fields = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ComponentsError(f"cannot read {path} as a .npz components file: {exc}") from exc
    info = dict(zip((str(k) for k in fields.pop("info_keys", [])), (str(v) for v in fields.pop("info_values", []))))
    return _from_mapping(fields, path, info)


def _from_mapping(data: dict, path: Path, info: Optional[dict[str, str]] = None) -> Components:
    missing = [k for k in ("layer", "comp", "stdev", "var_ratio", "global_mean") if k not in data]
    if missing:
        raise ComponentsError(f"{path} is not a GANSpace components file (missing {', '.join(missing)})")
    try:
        return Components(layer=str(data["layer"]), comp=data["comp"], stdev=data["stdev"],
                          var_ratio=data["var_ratio"], global_mean=data["global_mean"],
                          estimator=str(data.get("estimator", "unknown")), info=info or {})
    except (TypeError, ValueError) as exc:
        raise ComponentsError(f"{path}: {exc}") from exc


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays, numbers and strings; any other class is refused."""

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _restricted_unpickle(raw: bytes, path: Path) -> dict:
    try:
        data = _NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as exc:
        raise ComponentsError(f"{path} is not a plain GANSpace components pickle: {exc}") from exc
    if not isinstance(data, dict):
        raise ComponentsError(f"{path} holds a {type(data).__name__}, not a components dict")
    return data


class ScatterAccumulator:
    """Running mean and scatter matrix of row vectors, merged batch by batch in float64."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.mean = np.zeros(dim, np.float64)
        self.scatter = np.zeros((dim, dim), np.float64)

    def add(self, rows: np.ndarray) -> None:
        x = np.asarray(rows, np.float64).reshape(len(rows), -1)
        b = len(x)
        if b == 0:
            return
        batch_mean = x.mean(axis=0)
        centred = x - batch_mean
        delta = batch_mean - self.mean
        total = self.n + b
        self.scatter += centred.T @ centred + np.outer(delta, delta) * (self.n * b / total)
        self.mean += delta * (b / total)
        self.n = total

    def principal_components(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(components (k, D) unit rows, stdev (k,), variance ratio (k,)), by decreasing variance.

        Each component's sign is fixed so its largest-magnitude entry is positive, making results
        reproducible across runs and machines.
        """
        if self.n < 2:
            raise ValueError("PCA needs at least 2 samples")
        cov = self.scatter / (self.n - 1)
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1][:k]
        values = np.clip(values[order], 0.0, None)
        comps = vectors[:, order].T
        signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
        comps *= np.where(signs == 0, 1.0, signs)[:, None]
        total = float(np.trace(cov))
        ratio = values / total if total > 0 else np.zeros_like(values)
        return comps, np.sqrt(values), ratio


def compute_components(model: "GANSynth", layer: str = "conv0", random_z_count: int = 8192, batch_size: int = 64,
                       seed: Optional[int] = 0, pitch: Optional[int] = None, components: Optional[int] = None,
                       progress: Optional[Progress] = None) -> Components:
    """PCA of ``layer`` over ``random_z_count`` random latent vectors at one pitch.

    ``pitch`` defaults to 32 when trained
    (as the course's gansynth_ganspace) and to the lowest trained pitch otherwise. ``components``
    defaults to all that the samples can support: min(layer size, random_z_count - 1).
    """
    shape = model.layer_shape(layer)
    dim = int(np.prod(shape))
    if dim > MAX_LAYER_SIZE:
        raise ValueError(f"layer {layer} has {dim} values per note; PCA here is limited to {MAX_LAYER_SIZE} "
                         "(use conv0 or conv1)")
    if random_z_count < 2:
        raise ValueError("--random-z-count must be at least 2")
    k = min(dim, random_z_count - 1) if components is None else components
    if not 1 <= k <= dim:
        raise ValueError(f"--components must be between 1 and {dim} for layer {layer}")
    pitch = model.default_pitch() if pitch is None else pitch
    model.check_pitches([pitch])
    rng = np.random.default_rng(seed)
    acc = ScatterAccumulator(dim)
    done = 0
    while done < random_z_count:
        n = min(batch_size, random_z_count - done)
        acc.add(model.layer_activations(layer, model.random_z(n, rng), [pitch] * n))
        done += n
        if progress:
            progress(done / random_z_count)
    comps, stdev, ratio = acc.principal_components(k)
    info = {"checkpoint": str(getattr(model.files, "root", "")), "random_z_count": str(random_z_count),
            "seed": str(seed), "pitch": str(pitch)}
    return Components(layer, comps.reshape(k, *shape), stdev, ratio, acc.mean.reshape(shape), ESTIMATOR, info)


def _bar() -> Progress:
    """A one-line text progress bar on stderr, with the time left."""
    start = time.monotonic()

    def show(fraction: float) -> None:
        stream = sys.stderr
        filled = int(30 * fraction)
        elapsed = time.monotonic() - start
        eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
        stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {100 * fraction:5.1f}%  "
                     f"{elapsed:6.0f}s elapsed, {eta:6.0f}s left")
        if fraction >= 1:
            stream.write("\n")
        stream.flush()
    return show


def _describe(c: Components) -> str:
    top = ", ".join(f"{r:.3f}" for r in c.var_ratio[:5])
    extra = "".join(f"\n  {k}: {v}" for k, v in c.info.items())
    return (f"layer {c.layer} {c.layer_shape}, {c.count} components, estimator {c.estimator}\n"
            f"  variance ratio of the first components: {top}{extra}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="pdbridge ganspace", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    comp = sub.add_parser("compute", help="compute the PCA of a layer for a GANSynth checkpoint")
    comp.add_argument("ckpt", type=Path, help="checkpoint folder (experiment.json + stage_000NN/)")
    comp.add_argument("--layer", default="conv0", help="generator layer: conv0 (default) or conv1")
    comp.add_argument("--random-z-count", type=int, default=8192, help="random latent vectors to sample")
    comp.add_argument("--batch-size", type=int, default=64, help="latent vectors per batch (memory per batch)")
    comp.add_argument("--seed", type=int, default=0)
    comp.add_argument("--pitch", type=int, help="pitch of the sampled notes (default 32, or the lowest trained)")
    comp.add_argument("--components", type=int, help="how many to keep (default: as many as the data supports)")
    comp.add_argument("--out", type=Path, help="output .npz (default: CKPT/<name>_<layer>_pca_<count>.npz)")
    conv = sub.add_parser("convert", help="convert a course .pickle components file to .npz")
    conv.add_argument("pickle", type=Path)
    conv.add_argument("out", type=Path)
    conv.add_argument("--trust-pickle", action="store_true", help="required: unpickling can run code")
    info = sub.add_parser("info", help="describe a components file")
    info.add_argument("file", type=Path)
    info.add_argument("--trust-pickle", action="store_true")
    args = parser.parse_args(argv)

    try:
        if args.command == "compute":
            from .model import CheckpointError, GANSynth

            try:
                model = GANSynth.load(args.ckpt, batch_size=args.batch_size)
            except CheckpointError as exc:
                raise ComponentsError(str(exc)) from exc
            result = compute_components(model, args.layer, args.random_z_count, args.batch_size, args.seed,
                                        args.pitch, args.components, _bar())
            out = args.out or args.ckpt / f"{args.ckpt.resolve().name}_{args.layer}_pca_{args.random_z_count}.npz"
            result.save(out)
            print(f"wrote {out}\n{_describe(result)}")
        elif args.command == "convert":
            result = load_components(args.pickle, allow_pickle=args.trust_pickle)
            result.save(args.out)
            print(f"wrote {args.out}\n{_describe(result)}")
        else:
            print(_describe(load_components(args.file, allow_pickle=args.trust_pickle)))
    except (ComponentsError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
