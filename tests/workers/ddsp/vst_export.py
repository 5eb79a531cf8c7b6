"""A DDSP-VST export of a training folder, made by ddsp_export's own functions.

``ddsp_export --inference_model=vst_stateless_predict_controls --tflite --notfjs`` (the Train_VST
colab) runs: ``export_impulse_response``, ``get_metadata_dict`` (dataset statistics, rates,
harmonics), ``ckpt_to_saved_model`` and ``saved_model_to_tflite``. We call those same functions.
ddsp_export imports tensorflowjs and tflite_support at module level, for the TFJS converter and
for packing ``metadata.json`` into the .tflite; neither installs with TensorFlow 2.15 here, so
placeholder modules stand in while importing and TFJS is never called. The packing is what
tflite_support's MetadataPopulator does with an associated file: the file is appended to the
flatbuffer as a zip archive, which is how the DDSP-VST plugin reads it back.
"""
from __future__ import annotations

import json
import sys
import types
import zipfile
from pathlib import Path

from ddsp.training import data


def _ddsp_export() -> types.ModuleType:
    for name in ("tensorflowjs", "tensorflowjs.converters", "tflite_support"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["tensorflowjs"].converters = sys.modules["tensorflowjs.converters"]  # type: ignore[attr-defined]
    sys.modules["tensorflowjs.converters"].converter = None  # type: ignore[attr-defined]
    sys.modules["tflite_support"].metadata = None  # type: ignore[attr-defined]
    from ddsp.training import ddsp_export

    return ddsp_export


def export(model_dir: Path, save_dir: Path, provider: data.DataProvider, name: str = "tiny") -> Path:
    """``save_dir`` holding saved_model.pb, metadata.json, reverb_ir_16000_hz.wav, tflite/<name>.tflite."""
    exporter = _ddsp_export()
    exporter.FLAGS(["ddsp_export", "--inference_model=vst_stateless_predict_controls"])
    save_dir.mkdir(parents=True, exist_ok=True)
    exporter.export_impulse_response(str(model_dir), str(save_dir), None)
    metadata = exporter.get_metadata_dict(provider, str(model_dir))
    (save_dir / "metadata.json").write_text(json.dumps(metadata))
    exporter.ckpt_to_saved_model(str(model_dir), str(save_dir))
    (save_dir / "tflite").mkdir(exist_ok=True)
    exporter.saved_model_to_tflite(str(save_dir), str(save_dir / "tflite"), None, name=name)
    with zipfile.ZipFile(save_dir / "tflite" / f"{name}.tflite", "a") as z:
        z.write(save_dir / "metadata.json", "metadata.json")
    return save_dir
