"""GANSpace: batched PCA, the safe file format, the course's pickles, and edits along components."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from workers.gansynth import ganspace
from workers.gansynth.ganspace import (Components, ComponentsError, ScatterAccumulator, compute_components,
                                       load_components)
from workers.gansynth.model import GANSynth


@pytest.fixture(scope="module")
def components(tiny_model: GANSynth) -> Components:
    return compute_components(tiny_model, "conv0", random_z_count=600, batch_size=64, seed=0)


def test_batched_scatter_equals_numpy_covariance() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 12)) @ rng.standard_normal((12, 12)) + 3.0
    acc = ScatterAccumulator(12)
    for lo, hi in [(0, 7), (7, 200), (200, 201), (201, 500)]:
        acc.add(x[lo:hi])
    np.testing.assert_allclose(acc.mean, x.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(acc.scatter / (acc.n - 1), np.cov(x, rowvar=False), atol=1e-9)
    comps, stdev, ratio = acc.principal_components(3)
    top = np.linalg.eigh(np.cov(x, rowvar=False))[1][:, -1]
    assert abs(abs(comps[0] @ top) - 1) < 1e-9


def test_components_are_orthonormal_with_decreasing_variance(components: Components, tiny_model: GANSynth) -> None:
    assert components.layer == "conv0" and components.layer_shape == tiny_model.layer_shape("conv0")
    dim = int(np.prod(components.layer_shape))
    assert components.count == dim  # 600 samples support every one of the 256 directions
    flat = components.comp.reshape(components.count, -1).astype(np.float64)
    np.testing.assert_allclose(flat @ flat.T, np.eye(components.count), atol=1e-4)
    assert np.all(np.diff(components.stdev) <= 1e-6) and np.all(np.diff(components.var_ratio) <= 1e-7)
    assert components.var_ratio.sum() == pytest.approx(1.0, abs=1e-4)
    assert components.var_ratio[0] > components.var_ratio[-1] and components.stdev[0] > 0
    assert components.info["pitch"] == "32" and components.info["random_z_count"] == "600"


def test_same_seed_same_components(tiny_model: GANSynth, components: Components) -> None:
    again = compute_components(tiny_model, "conv0", random_z_count=600, batch_size=100, seed=0, components=5)
    np.testing.assert_allclose(again.comp, components.comp[:5], atol=1e-4)
    np.testing.assert_allclose(again.stdev, components.stdev[:5], rtol=1e-5)


def test_editing_along_component_k_moves_conv0_along_k(tiny_model: GANSynth, components: Components) -> None:
    """The activation the generator runs on moves by amp * stdev_k along comp_k and nowhere else."""
    z = tiny_model.random_z(1, np.random.default_rng(7))
    base = tiny_model.layer_activations("conv0", z, [32])[0]
    k, amp = 2, 1.5
    amps = np.zeros(11)
    amps[k] = amp
    offset = components.offset(amps)
    flat = components.comp.reshape(components.count, -1)
    projection = flat @ offset.reshape(-1)
    expected = np.zeros(components.count)
    expected[k] = amp * components.stdev[k]
    np.testing.assert_allclose(projection, expected, atol=1e-5)
    edited = tiny_model.generate(z, [32], offsets=(components.layer, offset))
    np.testing.assert_array_equal(edited, tiny_model.generate_from_layer("conv0", (base + offset)[None]))
    assert np.abs(edited - tiny_model.generate(z, [32])).max() > 1e-3


def test_noz_layer_values_start_at_the_global_mean(components: Components) -> None:
    np.testing.assert_array_equal(components.layer_values([]), components.global_mean)
    moved = components.layer_values([0.0, -2.0])
    np.testing.assert_allclose(moved - components.global_mean, -2.0 * components.stdev[1] * components.comp[1],
                               atol=1e-6)
    with pytest.raises(ValueError, match="amplitudes"):
        components.offset(np.zeros(components.count + 1))


def test_npz_round_trip_needs_no_pickle(components: Components, tmp_path: Path) -> None:
    path = components.save(tmp_path / "c.npz")
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) >= {"layer", "estimator", "comp", "stdev", "var_ratio", "global_mean"}
    back = load_components(path)
    assert back.layer == "conv0" and back.info == components.info
    np.testing.assert_array_equal(back.comp, components.comp)


def course_pickle(components: Components, path: Path) -> Path:
    """What the course's gansynth_ganspace wrote: a dict pickled with DEFAULT_PROTOCOL, mean as (1, D)."""
    with open(path, "wb") as f:
        pickle.dump({"layer": "conv0", "estimator": "ipca", "comp": components.comp.astype(np.float32),
                     "stdev": components.stdev, "var_ratio": components.var_ratio,
                     "global_mean": components.global_mean.reshape(1, -1)}, f, pickle.DEFAULT_PROTOCOL)
    return path


def test_course_pickle_needs_explicit_opt_in(components: Components, tmp_path: Path) -> None:
    path = course_pickle(components, tmp_path / "model_conv0_ipca_600.pickle")
    with pytest.raises(ComponentsError, match="can run code"):
        load_components(path)
    loaded = load_components(path, allow_pickle=True)
    assert loaded.estimator == "ipca" and loaded.global_mean.shape == components.layer_shape
    np.testing.assert_array_equal(loaded.comp, components.comp)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_with_code_is_refused_even_when_allowed(tmp_path: Path) -> None:
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({"layer": "conv0", "comp": _Exploit()}))
    with pytest.raises(ComponentsError, match="refusing to load"):
        load_components(path, allow_pickle=True)


def test_cli_compute_and_convert(tiny_ckpt: Path, components: Components, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pca.npz"
    assert ganspace.main(["compute", str(tiny_ckpt), "--random-z-count", "300", "--batch-size", "100",
                          "--seed", "3", "--components", "4", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "100.0%" in captured.err and "4 components" in captured.out
    result = load_components(out)
    assert result.count == 4 and result.info["seed"] == "3"

    src = course_pickle(components, tmp_path / "course.pickle")
    assert ganspace.main(["convert", str(src), str(tmp_path / "course.npz")]) == 1
    assert "can run code" in capsys.readouterr().err
    assert ganspace.main(["convert", str(src), str(tmp_path / "course.npz"), "--trust-pickle"]) == 0
    assert load_components(tmp_path / "course.npz").count == components.count
