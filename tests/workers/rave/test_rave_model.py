"""RAVE model code on our own small TorchScript exports (no acids-rave needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rave_fixture_exports import NotRave, exports_own, make_export, save, sine
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
    y, z = v2.forward(x, with_latent=True)
    assert y.shape == (1, len(x))
    np.testing.assert_array_equal(z, v2.encode(x))
    np.testing.assert_array_equal(y, v2.decode(v2.encode(x))[:, :len(x)])
    assert v2.forward(x)[1] is None  # no latents asked for, none computed


NOT_WHOLE_FRAMES = 64 * 50 + 17  # samples: 50 frames of the fixture's ratio 64 and a partial one


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Exports that draw random numbers like RAVE's, each taking partial frames in its own way."""
    root = tmp_path_factory.mktemp("rave_noisy")
    paths = {kind: make_export(root / f"{kind}.ts", noise=True, partial_frames=kind)
             for kind in ("cover", "refuse", "drop")}
    paths["streaming"] = make_export(root / "streaming.ts", noise=True, streaming=True)
    paths["own_forward"] = make_export(root / "own_forward.ts", noise=True, own_forward=True)
    paths["prior"] = make_export(root / "prior.ts", noise=True, prior=True)
    return paths


@pytest.mark.parametrize("kind", ["cover", "streaming", "own_forward"])
def test_forward_with_a_seed_is_the_exports_own_forward_after_manual_seed(noisy: dict[str, Path], kind: str
                                                                           ) -> None:
    x = sine(1.0, 44100)[:NOT_WHOLE_FRAMES]
    expected = exports_own(noisy[kind], "forward", x, 5)[:, :len(x)]
    np.testing.assert_array_equal(RaveModel.load(noisy[kind]).forward(x, seed=5)[0], expected)


@pytest.mark.parametrize("kind", ["cover", "streaming"])
def test_encode_takes_the_input_as_given(noisy: dict[str, Path], kind: str) -> None:
    x = sine(1.0, 44100)[:NOT_WHOLE_FRAMES]
    z = RaveModel.load(noisy[kind]).encode(x, seed=5)
    assert z.shape == (4, 51)
    np.testing.assert_array_equal(z, exports_own(noisy[kind], "encode", x, 5))


@pytest.mark.parametrize("kind", ["refuse", "drop"])
def test_only_exports_that_refuse_or_drop_a_partial_frame_get_it_padded(noisy: dict[str, Path], kind: str
                                                                        ) -> None:
    x = sine(1.0, 44100)[:NOT_WHOLE_FRAMES]
    padded = np.zeros(64 * 51, np.float32)
    padded[:len(x)] = x
    m = RaveModel.load(noisy[kind])
    np.testing.assert_array_equal(m.encode(x, seed=5), exports_own(noisy[kind], "encode", padded, 5))
    forward = exports_own(noisy[kind], "forward", padded, 5)
    np.testing.assert_array_equal(m.forward(x, seed=5)[0], forward[:, :len(x)])
    whole = x[:64 * 50]  # whole frames go in as they are, padded or not
    np.testing.assert_array_equal(m.encode(whole, seed=5), exports_own(noisy[kind], "encode", whole, 5))


def test_forward_with_edits_decodes_the_edited_latent_in_the_same_random_stream(noisy: dict[str, Path]
                                                                                ) -> None:
    x = sine(1.0, 44100)[:NOT_WHOLE_FRAMES]
    m = RaveModel.load(noisy["cover"])
    edits = LatentEdits(bias={1: 0.5}, scale={0: -1.0})
    y, z = m.forward(x, edits=edits, seed=5, with_latent=True)
    module = torch.jit.load(str(noisy["cover"]))
    torch.manual_seed(5)
    with torch.inference_mode():
        encoded = module.encode(torch.from_numpy(x)[None, None])
        edited = torch.from_numpy(edits.apply(encoded[0].numpy()))[None]
        decoded = module.decode(edited)[0].numpy()
    np.testing.assert_array_equal(z, edited[0].numpy())
    np.testing.assert_array_equal(y, decoded[:, :len(x)])
    unchanged = m.forward(x, edits=LatentEdits(scale={0: 1.0}), seed=5)[0]  # edits that change nothing:
    np.testing.assert_array_equal(unchanged, m.forward(x, seed=5)[0])  # the export's forward exactly


def test_forward_latents_are_the_exports_encode_from_the_same_seed(noisy: dict[str, Path]) -> None:
    x = sine(1.0, 44100)[:NOT_WHOLE_FRAMES]
    m = RaveModel.load(noisy["cover"])
    y, z = m.forward(x, seed=5, with_latent=True)
    np.testing.assert_array_equal(y, exports_own(noisy["cover"], "forward", x, 5)[:, :len(x)])
    np.testing.assert_array_equal(z, exports_own(noisy["cover"], "encode", x, 5))


def test_decode_and_sample_with_a_seed_are_the_exports_methods_after_manual_seed(noisy: dict[str, Path]
                                                                                 ) -> None:
    m = RaveModel.load(noisy["prior"])
    z = np.linspace(-1, 1, 4 * 30, dtype=np.float32).reshape(4, 30)
    np.testing.assert_array_equal(m.decode(z, seed=5), exports_own(noisy["prior"], "decode", z, 5))

    y, latent = m.sample(0.5, temperature=1.0, seed=5)
    module = torch.jit.load(str(noisy["prior"]))
    torch.manual_seed(5)  # prior then decode, one random stream, as an nn~ patch chaining them
    with torch.inference_mode():
        prior = module.prior(torch.full((1, 1, 345), 1.0))
        sampled = module.decode(prior)[0].numpy()
    np.testing.assert_array_equal(latent, prior[0].numpy())
    np.testing.assert_array_equal(y, sampled[:, :22050])


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
