"""Array files and buffers: WAV files Pd reads exactly, numbered names, which paths a folder owns."""
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pdwire.arrays import (MAX_BUFFER_BYTES, PD_FILE_NUMBERS, ArrayFolder, array_to_buffers, buffers_to_array,
                           read_wav, write_wav)
from pdwire.messages import InvalidMessage


def test_written_files_are_float32_wavs_read_back_bit_for_bit(tmp_path):
    samples = np.random.default_rng(1).standard_normal(10_000).astype(np.float32)
    path = tmp_path / "x.wav"
    write_wav(path, samples, 16000)
    info = soundfile.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "FLOAT")
    assert np.array_equal(read_wav(path), samples)


def test_files_pd_touches_are_named_by_a_number_alone(tmp_path):
    hub = ArrayFolder(tmp_path)
    number, path = hub.new_path()
    assert path == tmp_path / f"{number}.wav"
    worker = ArrayFolder(tmp_path, prefix="wdiagnostics-1-")
    assert worker.write(np.zeros(4, np.float32)).name.startswith("wdiagnostics-1-")


def test_numbers_stay_exact_in_pd_floats():
    folder = ArrayFolder(Path("/nonexistent"))
    folder._ids = iter([PD_FILE_NUMBERS - 2, PD_FILE_NUMBERS - 1, PD_FILE_NUMBERS, PD_FILE_NUMBERS + 1])
    assert [folder.next_number() for _ in range(4)] == [PD_FILE_NUMBERS - 2, PD_FILE_NUMBERS - 1, 1, 2]


def test_only_wav_files_directly_in_the_folder_are_owned(tmp_path):
    folder = ArrayFolder(tmp_path / "arrays")
    assert folder.owns(tmp_path / "arrays" / "3.wav")
    assert not folder.owns(tmp_path / "3.wav")
    assert not folder.owns(tmp_path / "arrays" / "sub" / "3.wav")
    assert not folder.owns(tmp_path / "arrays" / ".." / "3.wav")
    assert not folder.owns(tmp_path / "arrays" / "3.txt")
    assert not folder.owns(Path("/etc/passwd"))
    elsewhere = tmp_path / "keep.wav"
    elsewhere.write_bytes(b"RIFF")
    folder.discard(elsewhere)
    assert elsewhere.exists()


def test_big_arrays_travel_in_frames_no_bigger_than_the_limit():
    samples = np.arange(MAX_BUFFER_BYTES // 4 * 2 + 10, dtype=np.float32)
    meta, chunks = array_to_buffers(samples)
    assert meta["buffers"] == len(chunks) == 3
    assert all(c.nbytes <= MAX_BUFFER_BYTES for c in chunks)
    assert np.array_equal(buffers_to_array(meta, iter(chunks)), samples)


def test_buffers_must_match_their_description():
    with pytest.raises(InvalidMessage):
        buffers_to_array({"shape": [10], "dtype": "float32"}, iter([b"\x00" * 8]))
    with pytest.raises(InvalidMessage):
        buffers_to_array({"shape": [10], "dtype": "float32", "buffers": 2}, iter([b"\x00" * 40]))
    with pytest.raises(InvalidMessage):
        buffers_to_array({"shape": [2], "dtype": "int64"}, iter([b"\x00" * 16]))
