"""RAVE model code on our own small TorchScript exports (no acids-rave needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rave_fixture_exports import NotRave, make_export, save, sine
from workers.rave.model import LatentEdits, RaveExportError, RaveModel


@pytest.fixture(scope="module")
def v2_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_export(tmp_path_factory.mktemp("rave") / "v2.ts", prior=True)


@pytest.fixture(scope="module")
def v2(v2_path: Path) -> RaveModel:
    return RaveModel.load(v2_path)


def test_v2_export_describes_itself(v2: RaveModel) -> None:
    assert (v2.sample_rate, v2.sample_rate_source) == (44100, "export")
    assert (v2.latent_size, v2.full_latent_size, v2.ratio) == (4, 8, 64)
    assert v2.methods == ["encode", "decode", "forward", "prior"]
    assert v2.has_prior and not v2.streaming
    assert (v2.in_channels, v2.out_channels) == (1, 1)


def test_v1_export_rate_comes_from_sampling_rate_buffer(tmp_path: Path) -> None:
    m = RaveModel.load(make_export(tmp_path / "v1.ts", style="v1", sr=48000, out_channels=2))
    assert (m.sample_rate, m.sample_rate_source) == (48000, "export")
    assert m.methods == ["encode", "decode", "forward"]  # found through *_params: no get_methods
    assert not m.has_prior and m.full_latent_size == 8 and m.out_channels == 2
    assert m.forward(sine(0.1, 48000))[0].shape == (2, 4800)


def test_export_without_rate_is_assumed_44100_or_given(tmp_path: Path) -> None:
    path = make_export(tmp_path / "norate.ts", style="norate")
    assumed = RaveModel.load(path)
    assert (assumed.sample_rate, assumed.sample_rate_source) == (44100, "assumed")
    given = RaveModel.load(path, sample_rate=22050)
    assert (given.sample_rate, given.sample_rate_source) == (22050, "given")


def test_given_rate_that_contradicts_the_export_is_refused(v2_path: Path) -> None:
    with pytest.raises(RaveExportError, match="44100"):
        RaveModel.load(v2_path, sample_rate=48000)


@pytest.mark.parametrize("n", [64 * 100, 64 * 100 + 1, 5])
def test_encode_decode_shapes_follow_the_ratio(v2: RaveModel, n: int) -> None:
    x = sine(1.0, 44100)[:n]
    z = v2.encode(x)
    frames = -(-n // 64)
    assert z.shape == (4, frames) and z.dtype == np.float32
    y = v2.decode(z)
    assert y.shape == (1, frames * 64)


def test_forward_is_decode_of_encode_cropped_to_the_input(v2: RaveModel) -> None:
    x = sine(0.3, 44100)
    y, z = v2.forward(x)
    assert y.shape == (1, len(x))
    np.testing.assert_array_equal(z, v2.encode(x))
    np.testing.assert_array_equal(y, v2.decode(v2.encode(x))[:, :len(x)])


def test_forward_matches_the_exports_own_forward(v2: RaveModel) -> None:
    x = sine(64 * 50 / 44100, 44100)
    with torch.inference_mode():
        direct = v2.module.forward(torch.from_numpy(x)[None, None])[0].numpy()
    np.testing.assert_allclose(v2.forward(x)[0], direct, atol=1e-6)


def test_edits_change_exactly_the_edited_dimensions(v2: RaveModel) -> None:
    z = v2.encode(sine(0.2, 44100))
    edited = LatentEdits(bias={1: 0.5}, scale={1: 2.0, 3: -1.0}).apply(z)
    np.testing.assert_array_equal(edited[[0, 2]], z[[0, 2]])
    np.testing.assert_allclose(edited[1], z[1] * 2.0 + 0.5, rtol=1e-6)
    np.testing.assert_allclose(edited[3], -z[3], rtol=1e-6)
    assert not np.array_equal(edited[1], z[1]) and not np.array_equal(edited[3], z[3])


def test_decode_with_edits_decodes_the_edited_latent(v2: RaveModel) -> None:
    z = v2.encode(sine(0.2, 44100))
    edits = LatentEdits(bias={0: 1.0})
    by_hand = z.copy()
    by_hand[0] += 1.0
    np.testing.assert_array_equal(v2.decode(z, edits), v2.decode(by_hand))
    assert not np.array_equal(v2.decode(z, edits), v2.decode(z))


def test_edits_later_values_take_over_and_out_of_range_dims_fail() -> None:
    merged = LatentEdits(bias={0: 1.0, 2: 3.0}).updated(LatentEdits(bias={2: -1.0}, scale={1: 0.5}))
    assert merged.bias == {0: 1.0, 2: -1.0} and merged.scale == {1: 0.5}
    with pytest.raises(ValueError, match="dimensions 0 to 3"):
        LatentEdits(scale={4: 2.0}).apply(np.zeros((4, 10), np.float32))


def test_streaming_export_results_do_not_depend_on_the_previous_call(tmp_path: Path) -> None:
    m = RaveModel.load(make_export(tmp_path / "streaming.ts", streaming=True))
    assert m.streaming
    x = sine(0.2, 44100)
    first = m.forward(x)[0]
    m.encode(np.ones(44100, np.float32))  # leaves a different past in the cache
    np.testing.assert_array_equal(m.forward(x)[0], first)


def test_input_at_another_rate_is_resampled_both_ways(tmp_path: Path) -> None:
    m = RaveModel.load(make_export(tmp_path / "48k.ts", sr=48000))
    x = sine(0.5, 44100)
    z = m.encode(x, sample_rate=44100)
    assert z.shape[1] == -(-24000 // 64)  # 0.5 s at the model's 48 kHz
    y, _ = m.forward(x, sample_rate=44100)
    assert y.shape == (1, len(x))
    assert m.decode(z, sample_rate=44100).shape[1] == -(-z.shape[1] * 64 * 44100 // 48000)


def test_prior_sample_has_the_asked_length_and_uses_temperature(v2: RaveModel) -> None:
    y, z = v2.sample(0.5)
    assert y.shape == (1, 22050) and z.shape == (4, -(-22050 // 64))
    _, hotter = v2.sample(0.5, temperature=1.0)
    np.testing.assert_allclose(hotter, 2 * z, rtol=1e-5)  # the fixture prior scales by (1 + temp)


def test_sample_without_prior_explains_how_to_get_one(tmp_path: Path) -> None:
    m = RaveModel.load(make_export(tmp_path / "noprior.ts"))
    with pytest.raises(ValueError, match="--prior"):
        m.sample(1.0)


def test_a_file_that_is_not_torchscript_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "sound.ts"
    bad.write_bytes(b"RIFF....WAVEfmt " + bytes(100))
    with pytest.raises(RaveExportError, match="not a TorchScript export"):
        RaveModel.load(bad)


def test_a_training_checkpoint_is_refused_with_the_export_command(tmp_path: Path) -> None:
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, ckpt)
    with pytest.raises(RaveExportError, match="rave export"):
        RaveModel.load(ckpt)


def test_torchscript_without_raves_methods_is_refused(tmp_path: Path) -> None:
    path = save(NotRave(), tmp_path / "double.ts")
    with pytest.raises(RaveExportError, match="not a RAVE export.*encode"):
        RaveModel.load(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RaveExportError, match="no such file"):
        RaveModel.load(tmp_path / "nowhere.ts")
