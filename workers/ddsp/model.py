"""DDSP instruments: a training folder (as ``ddsp_run`` writes it) or a ``ddsp_export`` folder.

A **training folder** holds ``operative_config-N.gin``, ``ckpt-N.{index,data-*}`` (one per save)
and, when the student ran ddsp's ``save_dataset_statistics``, ``dataset_statistics.pkl``. We do
what the timbre-transfer colab does: parse the newest operative config, build ddsp's
``Autoencoder`` and restore the newest checkpoint (by step number, not the first file listed).
Decoding then calls the model's own decoder on the scaled f0 and loudness (or power, for models
trained with DDSP-VST's ``vst.gin``) and its own processor group for the audio, with the synths'
lengths set to the input's as the colab's gin bindings set them.

An **export folder** is what ``ddsp_export --inference_model=vst_stateless_predict_controls``
writes for DDSP-VST: a SavedModel and/or ``tflite/<name>.tflite`` with ``metadata.json`` packed
in (frame rate, sample rate, harmonics, noise bands), and ``reverb_ir_<sr>_hz.wav``. Those models
output per-frame synthesizer controls with the GRU state carried by hand; we run them frame by
frame and do the harmonic + filtered-noise synthesis and the reverb ourselves with ddsp's synths.
"""
from __future__ import annotations

import json
import re
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import crepe_module

crepe_module.install()

import gin  # noqa: E402
import tensorflow as tf  # noqa: E402
import ddsp  # noqa: E402
import ddsp.training  # noqa: E402
from ddsp.training.preprocessing import scale_db, scale_f0_hz  # noqa: E402

from .stats import StatisticsError, load_statistics  # noqa: E402

GIN_LOCK = threading.Lock()
"""gin's configuration is global: one model is configured and built at a time."""
INFERENCE_BINDINGS = (
    # the timbre-transfer colab's binding; in ddsp 3.7 Harmonic passes its own use_angular_cumsum
    # (False) to the oscillator bank, so it changes nothing, and neither do we
    "oscillator_bank.use_angular_cumsum = True",
)
LOUDNESS, POWER = "loudness", "power"


class ModelError(Exception):
    """A folder that is not a DDSP model we can load; the text says what is missing."""


@dataclass
class ModelInfo:
    """What ``info`` reports about an instrument."""

    path: Path
    kind: str
    """``checkpoint`` or ``savedmodel`` / ``tflite`` (an export)."""
    sample_rate: int
    frame_rate: int
    n_harmonics: int
    n_noise: int
    feature: str
    """``loudness`` (A-weighted loudness, solo_instrument.gin) or ``power`` (DDSP-VST)."""
    frame_size: int = 512
    """Window of the power feature; loudness uses ddsp's fixed 512-point FFT."""
    checkpoint_step: Optional[int] = None
    statistics: Optional[dict[str, Any]] = field(default=None, repr=False)

    @property
    def hop(self) -> int:
        return self.sample_rate // self.frame_rate

    def n_frames(self, n_samples: int) -> int:
        """Decoder frames for ``n_samples`` of input: the colab's ``len // hop`` for loudness
        models; one more for DDSP-VST models, whose features are centred and whose last frame
        only feeds the audio that ``Crop`` removes."""
        return n_samples // self.hop + (1 if self.feature == POWER else 0)


class Instrument:
    """A loaded DDSP model: controls from features, audio from controls."""

    info: ModelInfo

    def controls(self, f0_hz: np.ndarray, level_db: np.ndarray) -> dict[str, np.ndarray]:
        """Synthesizer controls per frame from f0 (Hz) and the level feature (dB)."""
        raise NotImplementedError

    def synthesize(self, controls: dict[str, np.ndarray], f0_hz: np.ndarray, seed: int = 0) -> np.ndarray:
        """Audio at ``info.sample_rate`` (``(frames - crop) * hop`` samples). ``seed`` fixes the
        noise, so the same controls always give the same sound."""
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        """Rough memory held, for the worker cache's bound."""
        return 0


# -- training folders ---------------------------------------------------------------------------
def newest_checkpoint(folder: Path) -> tuple[Path, int]:
    """``ckpt-N`` with the highest N that has an index file (ddsp keeps several while training)."""
    steps = [(int(m.group(1)), p) for p in folder.glob("ckpt-*.index")
             if (m := re.fullmatch(r"ckpt-(\d+)\.index", p.name))]
    if not steps:
        raise ModelError(f"{folder} holds no ckpt-N.index file (a DDSP training folder has operative_config-N.gin "
                         "and ckpt-N files)")
    step, index = max(steps)
    return index.with_suffix(""), step


def newest_config(folder: Path) -> Path:
    configs = [(int(m.group(1)), p) for p in folder.glob("operative_config-*.gin")
               if (m := re.fullmatch(r"operative_config-(\d+)\.gin", p.name))]
    if not configs:
        raise ModelError(f"{folder} has no operative_config-N.gin (written by ddsp_run next to the checkpoints)")
    return max(configs)[1]


def configure_gin(folder: Path, n_samples: Optional[int] = None, time_steps: Optional[int] = None) -> None:
    """Parse the folder's newest operative config (unknown names skipped, as the colab does) plus
    :data:`INFERENCE_BINDINGS`; with lengths, bind them as the colab does before building."""
    bindings = list(INFERENCE_BINDINGS)
    if n_samples is not None:
        bindings += [f"Harmonic.n_samples = {n_samples}", f"FilteredNoise.n_samples = {n_samples}"]
    if time_steps is not None:
        bindings.append(f"F0LoudnessPreprocessor.time_steps = {time_steps}")
    gin.clear_config()
    with gin.unlock_config():
        gin.parse_config_file(str(newest_config(folder)), skip_unknown=True)
        gin.parse_config(bindings)


def _query(name: str, default: Any = None) -> Any:
    try:
        return gin.query_parameter(name)
    except ValueError:
        return default


def _number(name: str, default: Any = None) -> int:
    """A numeric gin parameter, following macros (vst.gin writes ``sample_rate = %sample_rate``)."""
    value = _query(name, default)
    while isinstance(value, gin.config.ConfigurableReference):
        value = value.scoped_configurable_fn()
    if value is None:
        raise ModelError(f"the model's gin config does not set {name}")
    return int(value)


class CheckpointInstrument(Instrument):
    """A training folder restored into ddsp's own ``Autoencoder``."""

    def __init__(self, folder: Path) -> None:
        ckpt, step = newest_checkpoint(folder)
        with GIN_LOCK:
            try:
                configure_gin(folder)
            except (ValueError, OSError) as exc:  # gin's own parse errors name the line
                raise ModelError(f"cannot read the gin config in {folder}: {exc}") from exc
            preprocessor = _query("Autoencoder.preprocessor")
            kind = preprocessor.config_key[-1].split(".")[-1] if preprocessor is not None else ""
            splits = dict(_query("RnnFcDecoder.output_splits", ()) or ())
            sample_rate = _number("Harmonic.sample_rate", 16000)
            if "Power" in kind:
                feature, frame_rate = POWER, _number(f"{kind}.frame_rate", 50)
                frame_size = _number(f"{kind}.frame_size", 1024)
            elif kind == "F0LoudnessPreprocessor":
                feature, frame_size = LOUDNESS, 512
                frame_rate = sample_rate // (_number("Harmonic.n_samples") // _number(f"{kind}.time_steps"))
            else:
                raise ModelError(f"{folder}: the model's preprocessor is {kind or 'missing'}; pdbridge plays "
                                 "models trained on f0 and loudness (solo_instrument.gin) or f0 and power "
                                 "(DDSP-VST's vst.gin)")
            try:
                self.model = ddsp.training.models.Autoencoder()
            except Exception as exc:  # a gin config that names classes this ddsp lacks
                raise ModelError(f"cannot build the model of {folder}: {exc}") from exc
        self.model.restore(str(ckpt), verbose=False)
        self.info = ModelInfo(folder, "checkpoint", sample_rate, frame_rate,
                              int(splits.get("harmonic_distribution", 0)), int(splits.get("noise_magnitudes", 0)),
                              feature, frame_size, step,
                              _statistics(folder / "dataset_statistics.pkl"))
        self._level_key = "pw_scaled" if feature == POWER else "ld_scaled"
        self._decode = self._decoder_functions()
        # build every layer (variables are restored as they are created), as the colab's first call
        self.synthesize(self.controls(np.full(4, 220.0, np.float32), np.full(4, -40.0, np.float32)),
                        np.full(4, 220.0, np.float32))

    def _decoder_functions(self) -> Any:
        """The decoder as a function of (f0_scaled, level_scaled) tensors [1, frames, 1].

        ddsp's RnnFcDecoder runs per-frame stacks, one GRU over time, and more per-frame layers.
        TensorFlow steps a GRU through a while loop at ~0.4 ms a frame on a CPU (1 s for 10 s at
        250 frames/s); :func:`gru_sequence` runs the same layer's equations on its own weights in
        numpy at ~0.07 ms a frame, which is what makes a slider move re-render in well under a
        second. The per-frame parts stay ddsp's layers, in graph mode. Decoders with another RNN
        (LSTM) run whole through Keras.
        """
        decoder, level_key = self.model.decoder, self._level_key
        spec = tf.TensorSpec([1, None, 1], tf.float32)
        rnn = getattr(decoder.rnn, "rnn", None)
        if not isinstance(rnn, tf.keras.layers.GRU) or not rnn.reset_after or decoder.stateless:
            @tf.function(input_signature=[spec, spec])
            def whole(f0_scaled: tf.Tensor, level_scaled: tf.Tensor) -> dict[str, tf.Tensor]:
                return decoder({"f0_scaled": f0_scaled, level_key: level_scaled}, training=False)
            return lambda f0, level: {k: v.numpy()[0] for k, v in whole(f0, level).items()}

        @tf.function(input_signature=[spec, spec])
        def stacks(f0_scaled: tf.Tensor, level_scaled: tf.Tensor) -> tf.Tensor:
            values = {"f0_scaled": f0_scaled, level_key: level_scaled}
            return tf.concat([stack(values[k]) for stack, k in zip(decoder.input_stacks, decoder.input_keys)], -1)

        channels = int(stacks(tf.zeros([1, 1, 1]), tf.zeros([1, 1, 1])).shape[-1])

        @tf.function(input_signature=[tf.TensorSpec([1, None, channels], tf.float32),
                                      tf.TensorSpec([1, None, rnn.units], tf.float32)])
        def outputs(stacked: tf.Tensor, rnn_out: tf.Tensor) -> dict[str, tf.Tensor]:
            x = decoder.dense_out(decoder.out_stack(tf.concat([stacked, rnn_out], -1)))
            return ddsp.training.nn.split_to_dict(x, decoder.output_splits)

        def decode(f0_scaled: tf.Tensor, level_scaled: tf.Tensor) -> dict[str, np.ndarray]:
            stacked = stacks(f0_scaled, level_scaled)
            if not rnn.cell.weights:  # first call: let Keras create the weights the checkpoint restores into
                rnn(stacked)
            kernel, recurrent, bias = (w.numpy() for w in rnn.cell.weights)
            hidden = gru_sequence(stacked.numpy()[0], kernel, recurrent, bias)
            return {k: v.numpy()[0] for k, v in outputs(stacked, tf.constant(hidden[None])).items()}
        return decode

    def controls(self, f0_hz: np.ndarray, level_db: np.ndarray) -> dict[str, np.ndarray]:
        f0 = tf.constant(np.asarray(f0_hz, np.float32)[None, :, None])
        level = tf.constant(np.asarray(level_db, np.float32)[None, :, None])
        return self._decode(scale_f0_hz(f0), scale_db(level))

    def synthesize(self, controls: dict[str, np.ndarray], f0_hz: np.ndarray, seed: int = 0) -> np.ndarray:
        n_samples = len(f0_hz) * self.info.hop
        group = self.model.processor_group
        for node in group.dag:  # ddsp keeps each processor as an attribute named in the dag
            processor = getattr(group, node[0]) if isinstance(node[0], str) else node[0]
            if hasattr(processor, "n_samples"):
                processor.n_samples = n_samples  # the colab rebinds Harmonic/FilteredNoise.n_samples
        tf.random.set_seed(seed)
        inputs = {k: tf.constant(v[None]) for k, v in controls.items()}
        inputs["f0_hz"] = tf.constant(np.asarray(f0_hz, np.float32)[None, :, None])
        return group(inputs).numpy()[0]

    @property
    def nbytes(self) -> int:
        return int(sum(np.prod(v.shape) * 4 for v in self.model.variables))


def gru_sequence(x: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A Keras ``GRU(reset_after=True)`` over ``x`` [frames, inputs] from a zero state: the hidden
    state at every frame [frames, units]. Gates in Keras' order (update z, reset r, candidate):
    ``z, r = sigmoid(xW + b_in + hU + b_rec)``, ``c = tanh(xW_c + b_in_c + r * (hU_c + b_rec_c))``,
    ``h = z * h + (1 - z) * c``. The input projection of all frames is one matrix product; each
    step is one matrix-vector product and in-place vector operations (sigmoid as 0.5 tanh(x/2) + 0.5),
    about 35 us of Python and 50 us of BLAS a frame for 512 units."""
    units = recurrent_kernel.shape[0]
    projected = x @ kernel + bias[0]
    recurrent_t = np.ascontiguousarray(recurrent_kernel.T)  # rows are gates: a contiguous gemv
    states = np.zeros((len(x) + 1, units), np.float32)  # states[t + 1] is the state after frame t
    inner = np.empty(3 * units, np.float32)
    gates = np.empty(2 * units, np.float32)
    candidate = np.empty(units, np.float32)
    z, r = gates[:units], gates[units:]
    for t in range(len(x)):
        h, new = states[t], states[t + 1]
        np.dot(recurrent_t, h, out=inner)
        inner += bias[1]
        np.add(projected[t, :2 * units], inner[:2 * units], out=gates)
        gates *= 0.5
        np.tanh(gates, out=gates)
        gates *= 0.5
        gates += 0.5
        np.multiply(r, inner[2 * units:], out=candidate)
        candidate += projected[t, 2 * units:]
        np.tanh(candidate, out=candidate)
        np.subtract(h, candidate, out=new)  # z * h + (1 - z) * c  ==  c + z * (h - c)
        new *= z
        new += candidate
    return states[1:]


def _statistics(path: Path) -> Optional[dict[str, Any]]:
    if not path.exists():
        return None
    try:
        return load_statistics(path)
    except StatisticsError as exc:
        raise ModelError(str(exc)) from exc


# -- ddsp_export folders --------------------------------------------------------------------------
def read_export_metadata(folder: Path) -> tuple[dict[str, Any], Optional[Path]]:
    """The export's metadata (``metadata.json`` beside it, or the copy packed into the .tflite,
    which the plugin reads by opening the .tflite as a zip) and the .tflite file if any."""
    tflites = sorted(folder.glob("tflite/*.tflite")) + sorted(folder.glob("*.tflite"))
    tflite = tflites[0] if tflites else None
    if (folder / "metadata.json").is_file():
        return json.loads((folder / "metadata.json").read_text()), tflite
    if tflite is not None and zipfile.is_zipfile(tflite):
        with zipfile.ZipFile(tflite) as z:
            if "metadata.json" in z.namelist():
                return json.loads(z.read("metadata.json")), tflite
    raise ModelError(f"{folder}: no metadata.json (ddsp_export writes it beside the SavedModel and packs it "
                     "into the .tflite); it says the frame rate, sample rate, harmonics and noise bands")


class ExportInstrument(Instrument):
    """A DDSP-VST export: per-frame controls from the exported decoder, synthesis done here."""

    def __init__(self, folder: Path, prefer: str = "tflite") -> None:
        meta, tflite = read_export_metadata(folder)
        try:
            sample_rate, frame_rate = int(meta["sample_rate"]), int(meta["frame_rate"])
            self.info = ModelInfo(folder, "", sample_rate, frame_rate, int(meta["num_harmonics"]),
                                  int(meta["num_noise_amps"]), POWER, int(meta.get("frame_size", 1024)))
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelError(f"{folder}: metadata.json lacks {exc}") from exc
        has_saved_model = (folder / "saved_model.pb").is_file()
        if tflite is not None and (prefer == "tflite" or not has_saved_model):
            self.info.kind = "tflite"
            self._step = self._tflite_step(tflite)
        elif has_saved_model:
            self.info.kind = "savedmodel"
            self._step = self._saved_model_step(folder)
        else:
            raise ModelError(f"{folder} has neither saved_model.pb nor a .tflite file")
        irs = sorted(folder.glob(f"reverb_ir_{sample_rate}_hz.wav"))
        self.ir = _read_wav(irs[0]) if irs else None

    def _tflite_step(self, path: Path) -> Any:
        interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=1)
        runner = interpreter.get_signature_runner("call") if "call" in interpreter.get_signature_list() \
            else interpreter.get_signature_runner()
        inputs = runner.get_input_details()
        self.state_size = int(inputs["state"]["shape"][0])
        names = _output_names(runner.get_output_details())

        def step(f0_scaled: np.ndarray, pw_scaled: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, ...]:
            out = runner(f0_scaled=f0_scaled, pw_scaled=pw_scaled, state=state)
            return tuple(out[n] for n in names)
        return step

    def _saved_model_step(self, folder: Path) -> Any:
        loaded = tf.saved_model.load(str(folder))
        fn = loaded.signatures["call"]
        self._saved_model = loaded
        self.state_size = int(fn.structured_input_signature[1]["state"].shape[0])
        names = _output_names({k: {"shape": v.shape} for k, v in fn.structured_outputs.items()})

        def step(f0_scaled: np.ndarray, pw_scaled: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, ...]:
            out = fn(f0_scaled=tf.constant(f0_scaled), pw_scaled=tf.constant(pw_scaled), state=tf.constant(state))
            return tuple(out[n].numpy() for n in names)
        return step

    def controls(self, f0_hz: np.ndarray, level_db: np.ndarray) -> dict[str, np.ndarray]:
        f0_scaled = np.asarray(scale_f0_hz(np.asarray(f0_hz, np.float32)), np.float32)
        pw_scaled = np.asarray(scale_db(np.asarray(level_db, np.float32)), np.float32)
        state = np.zeros(self.state_size, np.float32)
        amps, hds, noises = [], [], []
        for f, p in zip(f0_scaled, pw_scaled):
            amp, hd, noise, state = self._step(np.array([f], np.float32), np.array([p], np.float32), state)
            amps.append(amp)
            hds.append(hd)
            noises.append(noise)
        return {"amplitudes": np.reshape(amps, (-1, 1)).astype(np.float32), "harmonic_distribution": np.array(hds),
                "noise_magnitudes": np.array(noises)}

    def synthesize(self, controls: dict[str, np.ndarray], f0_hz: np.ndarray, seed: int = 0) -> np.ndarray:
        hop, sr = self.info.hop, self.info.sample_rate
        n_samples = len(f0_hz) * hop
        tf.random.set_seed(seed)
        harmonic = ddsp.core.harmonic_synthesis(
            frequencies=tf.constant(np.asarray(f0_hz, np.float32)[None, :, None]),
            amplitudes=tf.constant(controls["amplitudes"][None]),
            harmonic_distribution=tf.constant(controls["harmonic_distribution"][None]),
            n_samples=n_samples, sample_rate=sr, amp_resample_method="linear")  # vst.gin's Harmonic
        noise = ddsp.synths.FilteredNoise(n_samples=n_samples, window_size=0, scale_fn=None).get_signal(
            tf.constant(controls["noise_magnitudes"][None]))
        audio = harmonic + noise
        if self.ir is not None:
            audio = ddsp.effects.Reverb(trainable=False, reverb_length=len(self.ir), add_dry=True)(
                audio, tf.constant(self.ir[None]))
        return audio.numpy()[0, :-hop]  # the centred features' extra frame, as vst.gin's Crop


def _output_names(details: dict[str, Any]) -> list[str]:
    """The exported function's outputs in its return order (amps, harmonic distribution, noise,
    state): SavedModel and TFLite signatures name a returned tuple output_0 .. output_3."""
    names = sorted(details)
    if len(names) != 4:
        raise ModelError(f"the exported model returns {len(names)} values; a DDSP-VST export "
                         "(vst_stateless_predict_controls) returns amps, harmonics, noise and the GRU state")
    return names


def _read_wav(path: Path) -> np.ndarray:
    import soundfile

    data, _ = soundfile.read(path, dtype="float32", always_2d=False)
    return data if data.ndim == 1 else data.mean(axis=1)


# -- finding and loading -------------------------------------------------------------------------
def load(path: Path, prefer: str = "tflite") -> Instrument:
    """The instrument in ``path``: a training folder, an export folder, or the course's way of
    naming a model by its ``operative_config-0.gin`` file."""
    folder = Path(path)
    if folder.is_file() and folder.suffix == ".gin":
        folder = folder.parent
    if not folder.is_dir():
        raise ModelError(f"DDSP model folder not found: {folder}")
    if any(folder.glob("operative_config-*.gin")):
        return CheckpointInstrument(folder)
    if (folder / "saved_model.pb").is_file() or any(folder.glob("tflite/*.tflite")) or any(folder.glob("*.tflite")):
        return ExportInstrument(folder, prefer)
    raise ModelError(f"{folder} is not a DDSP model: a training folder has operative_config-N.gin and ckpt-N "
                     "files; a ddsp_export folder has saved_model.pb or tflite/<name>.tflite")
