"""Upstream compatibility: exports written by acids-rave 2.3.1's own ``rave export`` from randomly
initialised runs: v2_small plain and ``--streaming``, and the mel-input ``hybrid`` config, the one
2.3.1 config whose export cannot encode every length. Results must be the export's own, bit for bit,
also through Pd. Slow: building and exporting takes about a minute."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from pdharness import HubThread, PdDriver, require_worker
from rave_fixture_exports import exports_own, sine

from pdbridge.pd import find_pd
from workers.rave.model import LatentEdits, RaveModel

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("rave") is None,
                       reason="acids-rave is not installed in this environment (make env-torch installs it)"),
]

TWO_SECONDS = 88200  # at 44.1 kHz: 172 frames of v2_small's 512 samples and a partial one


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from workers.rave.export_random import build_random_run, export

    root = tmp_path_factory.mktemp("rave_upstream")
    run = build_random_run(root / "v2_small")
    return {"plain": export(run, root / "out", streaming=False),
            "streaming": export(run, root / "out", streaming=True),
            "hybrid": export(build_random_run(root / "hybrid", "hybrid"), root / "out", streaming=False)}


def mixture(n: int) -> np.ndarray:
    """A test input with some high frequencies, so the encoder's last frames have something to see."""
    t = np.arange(n) / 44100
    return (0.5 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t)).astype(np.float32)


@pytest.mark.parametrize("kind", ["plain", "streaming"])
def test_real_export_describes_itself(exports: dict[str, Path], kind: str) -> None:
    m = RaveModel.load(exports[kind])
    assert (m.sample_rate, m.sample_rate_source) == (44100, "export")
    assert (m.latent_size, m.full_latent_size, m.ratio) == (4, 128, 512)  # v2_small: 16 bands x 4*2*2*2
    assert m.methods == ["encode", "decode", "forward"] and not m.has_prior
    assert m.streaming == (kind == "streaming")


@pytest.mark.parametrize("kind", ["plain", "streaming"])
def test_real_export_encode_decode_forward_shapes(exports: dict[str, Path], kind: str) -> None:
    m = RaveModel.load(exports[kind])
    x = sine(0.5, 44100)
    z = m.encode(x, seed=1)
    assert z.shape == (4, -(-len(x) // 512))
    y = m.decode(z, seed=2)
    assert y.shape == (1, z.shape[1] * 512) and np.isfinite(y).all()
    forward, latent = m.forward(x, seed=1, with_latent=True)
    assert forward.shape == (1, len(x))
    np.testing.assert_array_equal(latent, z)  # the latents forward decoded: encode from the same seed


@pytest.mark.parametrize("kind", ["plain", "streaming"])
def test_real_export_forward_with_a_seed_is_its_own_forward(exports: dict[str, Path], kind: str) -> None:
    x = mixture(TWO_SECONDS)
    expected = exports_own(exports[kind], "forward", x, 7)[:, :len(x)]
    np.testing.assert_array_equal(RaveModel.load(exports[kind]).forward(x, seed=7)[0], expected)


@pytest.mark.parametrize("kind", ["plain", "streaming"])
def test_real_export_encode_takes_the_input_as_given(exports: dict[str, Path], kind: str) -> None:
    x = mixture(TWO_SECONDS)
    z = RaveModel.load(exports[kind]).encode(x, seed=7)
    assert z.shape == (4, 173)
    np.testing.assert_array_equal(z, exports_own(exports[kind], "encode", x, 7))


def test_real_hybrid_export_is_padded_only_where_it_drops_the_end_or_refuses(exports: dict[str, Path]) -> None:
    """hybrid encodes a mel spectrogram (hop 256): it drops a partial last frame for most lengths
    and refuses inputs of up to half its 2048-sample window."""
    m = RaveModel.load(exports["hybrid"])
    assert m.ratio == 2048
    for n, export_frames in ((TWO_SECONDS, 43), (43 * 2048 + 1800, 44), (1000, None)):
        x = mixture(n)
        frames = -(-n // 2048)
        if export_frames is None:
            with pytest.raises(RuntimeError):
                exports_own(exports["hybrid"], "encode", x, 7)
        else:
            assert exports_own(exports["hybrid"], "encode", x, 7).shape[1] == export_frames
        given = x if export_frames == frames else np.pad(x, (0, frames * 2048 - n))
        z = m.encode(x, seed=7)
        np.testing.assert_array_equal(z, exports_own(exports["hybrid"], "encode", given, 7))
        y = m.forward(x, seed=7)[0]
        np.testing.assert_array_equal(y, exports_own(exports["hybrid"], "forward", given, 7)[:, :n])


def test_real_export_edits_reach_only_the_edited_dimension(exports: dict[str, Path]) -> None:
    m = RaveModel.load(exports["plain"])
    z = m.encode(sine(0.5, 44100), seed=1)
    edits = LatentEdits(bias={2: 1.5}, scale={0: 0.5})
    edited = edits.apply(z)
    np.testing.assert_array_equal(edited[[1, 3]], z[[1, 3]])
    np.testing.assert_allclose(edited[2], z[2] + 1.5, rtol=1e-6)
    np.testing.assert_allclose(edited[0], z[0] * 0.5, rtol=1e-6)
    np.testing.assert_array_equal(m.decode(z, edits, seed=3), m.decode(edited, seed=3))
    assert not np.allclose(m.decode(z, edits, seed=3), m.decode(z, seed=3))


@pytest.fixture
def pd(hub: HubThread) -> Iterator[PdDriver]:
    """[pdbridge.rave] in headless Pd, with the latent arrays tl-0 ... tl-3 beside it."""
    if find_pd() is None:
        pytest.skip("Pure Data is not installed")
    require_worker("rave")
    driver = PdDriver(hub.port, "rave", extra_patches=[Path(__file__).parent / "patches" / "rave_latents.pd"])
    yield driver
    driver.close()


def test_real_export_through_pd_is_its_own_forward_and_encode(pd: PdDriver, exports: dict[str, Path]) -> None:
    pd.send("load", str(exports["plain"]))
    pd.result("loaded")
    x = mixture(TWO_SECONDS)
    pd.write_array("drv-a", x)
    pd.send("forward", "drv-a", "drv-b", "--seed", 7)
    assert pd.result("forwarded") == ["drv-b", float(len(x))]
    # The worker is another process: torch's thread count, which can change the order of float sums
    # (4e-8 apart between 1, 2 and 4 threads here), may differ. Padding or a reseed differs by 1e-4 and more.
    expected = exports_own(exports["plain"], "forward", x, 7)[0, :len(x)]
    np.testing.assert_allclose(pd.read_array("drv-b"), expected, rtol=0, atol=1e-6)
    pd.send("encode", "drv-a", "tl", "--seed", 7)
    assert pd.result("encoded") == ["tl", 4.0, 173.0]
    z = np.stack([pd.read_array(f"tl-{d}") for d in range(4)])
    np.testing.assert_allclose(z, exports_own(exports["plain"], "encode", x, 7), rtol=0, atol=1e-6)
