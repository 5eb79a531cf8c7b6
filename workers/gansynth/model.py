"""GANSynth checkpoints through magenta 2.1.4's own model code, without its training data.

A GANSynth checkpoint directory holds ``experiment.json`` (the training flags) and one
``stage_000NN/`` folder per progressive-growing stage with ``model.ckpt-N.{index,data-*,meta}``:
the layout of the published ``all_instruments`` / ``acoustic_only`` zips. Custom models trained
with the course's scripts also carry ``meta.json`` (NSynth-style note metadata), from which the
trained pitches are read; the pitch table decides the size of the generator's one-hot input, so it
must match training exactly.

magenta's ``Model.__init__`` always builds the training input pipeline, which loads NSynth through
tensorflow-datasets (network or a prepared data dir). We register our own dataset class in
magenta's dataset registry instead: it knows the checkpoint's pitch table and hands the pipeline a
constant silent example that generation never reads. No magenta file is modified.

GANSpace edits act on the activation of one generator layer (``conv0`` by default: block 1's
first convolution, shape 2 x 16 x 256 in the published models). magenta 2.1.4's generator has no
hook for that, so we run the graph in two steps: fetch the layer for the given z and pitch, change
it in numpy, then feed it back into the same tensor and fetch the audio. TensorFlow prunes
everything upstream of a fed tensor, so the second step costs what the rest of the generator costs.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import tensorflow.compat.v1 as tf
from magenta.models.gansynth.lib import datasets
from magenta.models.gansynth.lib import flags as lib_flags
from magenta.models.gansynth.lib import model as lib_model

# magenta's GANSynth is TF1 graph code; its own gansynth_generate does the same before loading.
tf.disable_v2_behavior()

Progress = Callable[[float], None]

NO_DATA_DATASET = "pdbridge_checkpoint_pitches"
"""Name under which :class:`CheckpointPitches` is registered in magenta's dataset registry."""
PITCH_COUNTS_KEY = "pdbridge_pitch_counts"
"""Flag carrying the checkpoint's pitch table to :class:`CheckpointPitches`."""
_LAYER_RE = re.compile(r"^conv([01])(?:_(\d+))?$")


class CheckpointError(Exception):
    """The folder is not a GANSynth checkpoint we can load; the message says what is missing."""


class PitchError(ValueError):
    """A requested pitch is not one the model was trained on."""


class CheckpointPitches(datasets.NSynthTfdsDataset):
    """Stands in for the NSynth training data when building a model only to generate.

    The pitch table comes from the checkpoint (``meta.json``) or, for the published models, from
    magenta's own NSynth table. The input pipeline gets one silent example repeated forever; it is
    built into the graph but never run.
    """

    def _get_dataset_from_tfds(self) -> "tf.data.Dataset":
        pitch = min(self.get_pitch_counts())
        example = {"audio": tf.zeros([self._config["audio_length"]], tf.float32),
                   "pitch": tf.constant(pitch, tf.int64)}
        return tf.data.Dataset.from_tensors(example).repeat()

    def get_pitch_counts(self) -> dict[int, int]:
        counts = self._config.get(PITCH_COUNTS_KEY)
        return dict(counts) if counts else super().get_pitch_counts()


datasets.registry[NO_DATA_DATASET] = CheckpointPitches


@dataclass(frozen=True)
class CheckpointFiles:
    """Where the pieces of a checkpoint directory are."""

    root: Path
    experiment: dict
    stage_id: int
    ckpt_prefix: Path
    pitch_counts: Optional[dict[int, int]]
    """From meta.json; None means magenta's NSynth table (pitches 24-84)."""


def find_checkpoint(path: Path) -> CheckpointFiles:
    """Locate the newest stage and step in a GANSynth checkpoint directory.

    We scan ``model.ckpt-N.index`` files rather than trusting the ``checkpoint`` index file:
    training machines write absolute paths into it, which break once the folder is copied.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise CheckpointError(f"GANSynth checkpoint folder not found: {root}")
    experiment_path = root / "experiment.json"
    if not experiment_path.is_file():
        raise CheckpointError(f"{root} has no experiment.json: a GANSynth checkpoint folder holds "
                              "experiment.json and stage_000NN/ folders (as in all_instruments.zip)")
    try:
        experiment = json.loads(experiment_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {experiment_path}: {exc}") from exc
    stages = sorted((p for p in root.glob("stage_*") if p.is_dir() and p.name[6:].isdigit()),
                    key=lambda p: int(p.name[6:]))
    if not stages:
        raise CheckpointError(f"{root} has no stage_000NN folders with model.ckpt-N files")
    stage = stages[-1]
    steps = [(int(m.group(1)), p) for p in stage.glob("model.ckpt-*.index")
             if (m := re.match(r"model\.ckpt-(\d+)\.index$", p.name))]
    if not steps:
        raise CheckpointError(f"{stage} holds no model.ckpt-N.index file")
    step, index = max(steps)
    return CheckpointFiles(root, experiment, int(stage.name[6:]), index.with_suffix(""),
                           read_meta_pitches(root / "meta.json"))


def read_meta_pitches(path: Path) -> Optional[dict[int, int]]:
    """Pitch -> note count from a course ``meta.json`` (``{note_name: {"pitch": p, ...}}``)."""
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
        counts: dict[int, int] = {}
        for note in meta.values():
            pitch = int(note["pitch"])
            counts[pitch] = counts.get(pitch, 0) + 1
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"cannot read the trained pitches from {path}: expected "
                              '{"note_name": {"pitch": 32, ...}, ...} ({exc})') from exc
    if not counts:
        raise CheckpointError(f"{path} lists no notes, so the trained pitches are unknown")
    return counts


def model_flags(files: CheckpointFiles) -> lib_flags.Flags:
    """The training flags, completed with magenta's defaults, pointed at our no-data dataset."""
    flags = lib_flags.Flags()
    flags.load(files.experiment)
    flags["train_root_dir"] = str(files.root)
    lib_model.set_flags(flags)
    flags["dataset_name"] = NO_DATA_DATASET
    if files.pitch_counts:
        flags[PITCH_COUNTS_KEY] = files.pitch_counts
    return flags


def build_model(stage_id: int, batch_size: int, flags: lib_flags.Flags,
                seed: Optional[int] = None) -> lib_model.Model:
    """magenta's Model in a graph of its own, so several models can live in one process.

    ``seed`` is the graph-level seed for the variable initialisers (used when writing new weights).
    """
    graph = tf.Graph()
    graph.seed = seed
    with graph.as_default():
        return lib_model.Model(stage_id, batch_size, flags)


def slerp(z0: np.ndarray, z1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between two latent vectors, as GANSynth's generate_util does.

    Moving along the great circle keeps the norm a Gaussian latent typically has; a straight line
    passes closer to the origin, where the generator sounds dull. Parallel vectors (including
    ``z0 == z1``) have no unique circle, so they are interpolated linearly.
    """
    a, b = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return (1 - t) * a + t * b
    omega = np.arccos(np.clip(np.dot(a / na, b / nb), -1.0, 1.0))
    if np.sin(omega) < 1e-9:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


class GANSynth:
    """A loaded GANSynth generator: latent vectors and pitches in, 4 s notes out.

    ``batch_size`` is fixed when the graph is built (magenta's placeholders have a static batch);
    any number of notes is generated by running as many batches as needed, padding the last.
    """

    def __init__(self, model: lib_model.Model, files: Optional[CheckpointFiles] = None) -> None:
        self.model = model
        self.files = files
        self._layers: dict[str, tf.Tensor] = {}

    @classmethod
    def load(cls, path: Path, batch_size: int = 8) -> "GANSynth":
        """Build magenta's graph for the checkpoint's last stage and restore its weights."""
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        files = find_checkpoint(path)
        try:
            model = build_model(files.stage_id, batch_size, model_flags(files))
            model.saver.restore(model.sess, str(files.ckpt_prefix))
        except (tf.errors.OpError, ValueError, KeyError) as exc:
            raise CheckpointError(f"cannot load {files.ckpt_prefix}: {type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        return cls(model, files)

    # -- what the model is ---------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return int(self.model.batch_size)

    @property
    def audio_length(self) -> int:
        return int(self.model.config["audio_length"])

    @property
    def sample_rate(self) -> int:
        return int(self.model.config["sample_rate"])

    @property
    def latent_size(self) -> int:
        return int(self.model.config["latent_vector_size"])

    @property
    def pitches(self) -> list[int]:
        """The pitches the model was trained on, ascending."""
        return sorted(int(p) for p in self.model.pitch_counts)

    def default_pitch(self, preferred: int = 32) -> int:
        """``preferred`` if trained (the course used 32 everywhere), else the lowest trained pitch."""
        return preferred if preferred in self.model.pitch_counts else self.pitches[0]

    def check_pitches(self, pitches: Iterable[float]) -> list[int]:
        """Integer MIDI pitches, or :class:`PitchError` naming the trained range."""
        out = []
        for p in pitches:
            if float(p) != int(p) or int(p) not in self.model.pitch_to_label_dict:
                raise PitchError(f"the model was not trained on pitch {p:g}; it knows "
                                 f"{describe_pitches(self.pitches)}")
            out.append(int(p))
        return out

    def _labels(self, pitches: Sequence[float]) -> list[int]:
        """Indices into the generator's one-hot pitch input (pitches checked first)."""
        return [self.model.pitch_to_label_dict[p] for p in self.check_pitches(pitches)]

    def close(self) -> None:
        self.model.sess.close()

    # -- latents -------------------------------------------------------------------------
    def random_z(self, n: int, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """``n`` latent vectors from the standard normal prior GANSynth was trained with."""
        rng = rng if rng is not None else np.random.default_rng()
        return rng.standard_normal((n, self.latent_size))

    def _check_z(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float64)
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"latent vectors must have {self.latent_size} values each, got shape {z.shape}")
        return z

    # -- layers ----------------------------------------------------------------------------
    def layer(self, name: str) -> tf.Tensor:
        """The generator activation ``conv0``/``conv1`` (block 1) or ``conv0_B``/``conv1_B`` (block B).

        The tensor is found inside the generator that maps magenta's placeholders to audio: it is
        the output of that convolution's scope which the rest of the generator consumes.
        """
        if name not in self._layers:
            self._layers[name] = self._find_layer(name)
        return self._layers[name]

    def layer_shape(self, name: str) -> tuple[int, ...]:
        """Shape of one example's activation, e.g. (2, 16, 256) for conv0 of the published models."""
        return tuple(int(d) for d in self.layer(name).shape[1:])

    def _find_layer(self, name: str) -> tf.Tensor:
        match = _LAYER_RE.match(name)
        if not match:
            raise ValueError(f"unknown layer {name!r}: use conv0 or conv1 (block 1), or conv0_B / conv1_B")
        block = int(match.group(2) or 1)
        if not 1 <= block <= self.model.num_blocks:
            raise ValueError(f"layer {name!r}: this model has blocks 1 to {self.model.num_blocks}")
        scope = f"progressive_gan_block_{block}/conv{match.group(1)}/"
        graph = self.model.sess.graph
        # Only the generator between the placeholders and the waves (the training graph has its own).
        ancestors = _ancestor_ops(self.model.fake_waves_ph.op)
        inside = {op for op in ancestors if scope in op.name and "/to_rgb" not in op.name}
        outputs = [t for op in inside for t in op.outputs
                   if any(c in ancestors and c not in inside for c in t.consumers())
                   and t.dtype == tf.float32 and t.shape.rank == 4]
        if len(outputs) != 1:
            raise ValueError(f"cannot locate layer {name!r} in this generator graph "
                             f"({len(outputs)} candidate tensors in {graph})")
        return outputs[0]

    # -- generation ------------------------------------------------------------------------
    def generate(self, z: np.ndarray, pitches: Sequence[float],
                 offsets: Optional[tuple[str, np.ndarray]] = None,
                 progress: Optional[Progress] = None) -> np.ndarray:
        """Audio ``(n, audio_length)`` float32 for latents ``z (n, latent_size)`` and pitches.

        ``offsets`` is ``(layer, values)``: values of shape ``layer_shape`` (the same for every
        note) or ``(n, *layer_shape)`` are added to that layer's activation (GANSpace edits).
        """
        z = self._check_z(z)
        labels = self._labels(pitches)
        if len(labels) != len(z):
            raise ValueError(f"{len(z)} latent vectors but {len(labels)} pitches")
        layer_name, delta = offsets if offsets is not None else (None, None)
        if layer_name is not None:
            delta = _per_note(np.asarray(delta, np.float32), len(z), self.layer_shape(layer_name), "offsets")

        def run(lo: int, hi: int) -> np.ndarray:
            feed = {self.model.labels_ph: _pad(np.asarray(labels[lo:hi]), self.batch_size),
                    self.model.noises_ph: _pad(z[lo:hi], self.batch_size)}
            if layer_name is None:
                return self.model.sess.run(self.model.fake_waves_ph, feed)
            tensor = self.layer(layer_name)
            base = self.model.sess.run(tensor, feed)
            return self.model.sess.run(self.model.fake_waves_ph,
                                       {tensor: base + _pad(delta[lo:hi], self.batch_size)})

        return self._batches(len(z), run, progress)

    def generate_from_layer(self, layer_name: str, values: np.ndarray,
                            progress: Optional[Progress] = None) -> np.ndarray:
        """Audio from given activations of one layer (no latent vector: GANSpace ``noz`` mode).

        Everything before the layer, pitch included, is bypassed; the rest of the generator runs
        on ``values (n, *layer_shape)``.
        """
        tensor = self.layer(layer_name)
        values = _per_note(np.asarray(values, np.float32), None, self.layer_shape(layer_name), "layer values")
        return self._batches(len(values), lambda lo, hi: self.model.sess.run(
            self.model.fake_waves_ph, {tensor: _pad(values[lo:hi], self.batch_size)}), progress)

    def layer_activations(self, layer_name: str, z: np.ndarray, pitches: Sequence[float],
                          progress: Optional[Progress] = None) -> np.ndarray:
        """Activations ``(n, *layer_shape)`` of a layer for the given latents and pitches."""
        z = self._check_z(z)
        labels = self._labels(pitches)
        tensor = self.layer(layer_name)
        chunks = []
        for lo in range(0, len(z), self.batch_size):
            hi = min(lo + self.batch_size, len(z))
            out = self.model.sess.run(tensor, {
                self.model.labels_ph: _pad(np.asarray(labels[lo:hi]), self.batch_size),
                self.model.noises_ph: _pad(z[lo:hi], self.batch_size)})
            chunks.append(out[:hi - lo])
            if progress:
                progress(hi / len(z))
        return np.concatenate(chunks) if chunks else np.zeros((0, *self.layer_shape(layer_name)), np.float32)

    def _batches(self, n: int, run: Callable[[int, int], np.ndarray],
                 progress: Optional[Progress]) -> np.ndarray:
        out = np.zeros((n, self.audio_length), np.float32)
        for lo in range(0, n, self.batch_size):
            hi = min(lo + self.batch_size, n)
            waves = run(lo, hi)
            out[lo:hi] = waves[:hi - lo, :self.audio_length, 0]
            if progress:
                progress(hi / n)
        return out


def describe_pitches(pitches: Sequence[int]) -> str:
    """``pitches 24-84`` for a contiguous range, else the list."""
    if not pitches:
        return "no pitches"
    if list(pitches) == list(range(pitches[0], pitches[-1] + 1)) and len(pitches) > 2:
        return f"pitches {pitches[0]}-{pitches[-1]}"
    return "pitch" + ("es " if len(pitches) > 1 else " ") + " ".join(str(p) for p in pitches)


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad the first axis to ``n`` rows: the graph's batch size is static."""
    if len(x) == n:
        return x
    return np.concatenate([x, np.zeros((n - len(x), *x.shape[1:]), x.dtype)])


def _per_note(values: np.ndarray, n: Optional[int], shape: tuple[int, ...], what: str) -> np.ndarray:
    if values.shape == shape and n is not None:
        return np.broadcast_to(values, (n, *shape))
    if values.shape[1:] != shape or (n is not None and len(values) != n):
        want = f"{shape} or {(n, *shape)}" if n is not None else f"(n, {', '.join(map(str, shape))})"
        raise ValueError(f"{what} must have shape {want}, got {values.shape}")
    return values


def _ancestor_ops(op: "tf.Operation") -> set:
    """Every op that ``op`` depends on through data edges."""
    seen, stack = set(), [op]
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        stack.extend(t.op for t in cur.inputs)
    return seen

