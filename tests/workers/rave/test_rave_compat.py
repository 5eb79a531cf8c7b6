"""Upstream compatibility: exports written by acids-rave 2.3.1's own ``rave export`` (v2_small config,
random weights), plain and ``--streaming``. Slow: building and exporting takes about a minute."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from rave_fixture_exports import sine
from workers.rave.model import LatentEdits, RaveModel

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("rave") is None,
                       reason="acids-rave is not installed in this environment (make env-torch installs it)"),
]


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from workers.rave.export_random import build_random_run, export

    root = tmp_path_factory.mktemp("rave_upstream")
    run = build_random_run(root / "v2_small")
    return {"plain": export(run, root / "out", streaming=False),
            "streaming": export(run, root / "out", streaming=True)}


@pytest.mark.parametrize("kind", ["plain", "streaming"])
def test_real_export_describes_itself(exports: dict[str, Path], kind: str) -> None:
    m = RaveModel.load(exports[kind])
    assert (m.sample_rate, m.sample_rate_source) == (44100, "export")
    assert (m.latent_size, m.full_latent_size, m.ratio) == (4, 128, 512)  # v2_small: 16 bands x 4*2*2*2
    assert m.methods == ["encode", "decode", "forward"] and not m.has_prior
    assert m.streaming == (kind == "streaming")


@pytest.mark.parametrize("kind", ["plain", "streaming"])
def test_real_export_encode_decode_forward(exports: dict[str, Path], kind: str) -> None:
    m = RaveModel.load(exports[kind])
    x = sine(0.5, 44100)
    z = m.encode(x, seed=1)
    assert z.shape == (4, -(-len(x) // 512))
    y = m.decode(z, seed=2)
    assert y.shape == (1, z.shape[1] * 512) and np.isfinite(y).all()
    forward, latent = m.forward(x, seed=1)
    np.testing.assert_array_equal(latent, z)
    np.testing.assert_array_equal(forward, y[:, :len(x)])


@pytest.mark.parametrize("kind", ["plain", "streaming"])
def test_real_export_forward_matches_its_own_forward_method(exports: dict[str, Path], kind: str) -> None:
    m = RaveModel.load(exports[kind])
    x = sine(512 * 40 / 44100, 44100)
    torch.manual_seed(7)
    ours = m.forward(x)[0]
    m._reset()
    torch.manual_seed(7)  # RAVE draws noise in encode and decode: same seed, same draws
    with torch.inference_mode():
        direct = m.module.forward(torch.from_numpy(x)[None, None])[0].numpy()
    np.testing.assert_allclose(ours, direct, atol=1e-6)


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
