"""The array folder: WAV files Pd reads exactly, and which paths the hub accepts from a worker."""
from pathlib import Path

import numpy as np
import soundfile

from pdbridge.exchange import ArrayExchange, read_wav


def test_written_files_are_float32_wavs_read_back_bit_for_bit():
    ex = ArrayExchange()
    try:
        samples = np.random.default_rng(1).standard_normal(10_000).astype(np.float32)
        path = ex.write("some name/with:odd chars", samples, 16000)
        assert path.parent == ex.root and " " not in path.name and "/" not in path.name[:-4]
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "FLOAT")
        assert np.array_equal(read_wav(path), samples)
    finally:
        ex.close()
    assert not ex.root.exists()


def test_a_worker_writes_into_the_hubs_folder_without_owning_it(tmp_path):
    hub = ArrayExchange()
    try:
        worker = ArrayExchange(root=hub.root, prefix="w1-")
        path = worker.write("out", np.zeros(4, np.float32))
        assert path.name.startswith("w1-") and hub.owns(path)
        worker.close()
        assert hub.root.exists()  # only the hub removes its folder
    finally:
        hub.close()


def test_only_wav_files_directly_in_the_folder_are_owned(tmp_path):
    ex = ArrayExchange()
    try:
        assert ex.owns(ex.root / "3-x.wav")
        assert not ex.owns(tmp_path / "3-x.wav")
        assert not ex.owns(ex.root / "sub" / "3-x.wav")
        assert not ex.owns(ex.root / ".." / "3-x.wav")
        assert not ex.owns(ex.root / "3-x.txt")
        assert not ex.owns(Path("/etc/passwd"))
        elsewhere = tmp_path / "keep.wav"
        elsewhere.write_bytes(b"RIFF")
        ex.discard(elsewhere)
        assert elsewhere.exists()
    finally:
        ex.close()
