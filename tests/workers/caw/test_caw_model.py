"""CAW without Pd: the original code's fixture, what training learns, and stop/resume."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch
from conftest import SR, Quiet, train_tiny
from pdharness import SHARED_FIXTURES

from workers.caw import generate as gen
from workers.caw.config import CAWConfig
from workers.caw.data import prepare
from workers.caw.folder import load_model, load_tensors
from workers.caw.model import DilatedConv, Discriminator, Generator
from workers.caw.original import map_key
from workers.caw.train import train

FIXTURE = SHARED_FIXTURES / "caw_original"


def log_spectrum(x: np.ndarray) -> np.ndarray:
    """Welch power spectrum in log10 (256-point segments): the clip's spectral profile."""
    return np.log10(scipy.signal.welch(x, SR, nperseg=256)[1] + 1e-10)


def spectral_distance(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(log_spectrum(x) - log_spectrum(y))))


def band_energy(x: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    f, p = scipy.signal.welch(x, sr, nperseg=256)
    return float(p[(f >= lo) & (f < hi)].sum())


@pytest.mark.skipif(not FIXTURE.exists(), reason="shared/fixtures/caw_original is not beside the checkout")
def test_the_original_codes_folder_reconstructs_its_reference() -> None:
    reference = np.load(FIXTURE / "reconstruction_reference.npz")
    model = load_model(FIXTURE / "outputs" / "twonote")
    assert model.kind == "original" and model.fs_list == [1600, 2000, 2500, 4000, 8000]
    np.testing.assert_allclose(model.noise_amps, reference["noise_amp_list"], rtol=0, atol=0)
    outputs = gen.reconstruct(model, "cpu", all_scales=True)
    for fs, out in zip(model.fs_list, outputs):
        expected = reference[f"reconstruction@{fs}Hz"]
        assert out.shape == expected.shape
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)  # measured: 2.6e-7 at most


def test_original_keys_map_onto_ours() -> None:
    ours = set(Generator(96, 9, [2 ** i for i in range(8)]).state_dict())
    theirs = load_tensors(FIXTURE / "outputs" / "twonote" / "netGScale1.pth") if FIXTURE.exists() else {}
    if theirs:
        assert {map_key(k) for k in theirs} == ours and len(theirs) == 68


def test_scales_start_where_the_clip_has_energy() -> None:
    t = np.arange(8000) / 8000
    high = np.sin(2 * np.pi * 1500 * t).astype(np.float32)  # nothing below 1500 Hz
    scales = prepare(high, 8000, CAWConfig(sample_rate=8000, num_layers=6))
    assert scales.fs_list[0] > 3000 and scales.fs_list[-1] == 8000  # the 4000 Hz scale is the first that holds it
    assert scales.norm_factor == pytest.approx(1.0, abs=1e-3)


def test_a_hole_hides_itself_from_the_discriminator() -> None:
    d = Discriminator(4, 9, [1, 2, 4])
    x = torch.randn(1, 1, 200)
    clean = d(x, holes=[(100, 119)])
    x2 = x.clone()
    x2[..., 100:120] = torch.randn(20) * 100
    d.train()
    torch.testing.assert_close(d(x2, holes=[(100, 119)]), clean)  # scores never see the hole
    assert clean.shape[-1] < 200 - sum(d.shrink)


@pytest.mark.parametrize("padding", [0, 4])
def test_the_fast_convolution_has_the_librarys_gradients_to_second_order(padding: int) -> None:
    torch.manual_seed(0)
    x, w, b = (torch.randn(*shape, dtype=torch.double, requires_grad=True) for shape in ((2, 3, 40), (4, 3, 3), (4,)))
    conv = lambda x, w, b: DilatedConv.apply(x, w, b, 4, padding)  # noqa: E731
    assert torch.autograd.gradcheck(conv, (x, w, b)) and torch.autograd.gradgradcheck(conv, (x, w, b))
    grad = torch.randn_like(conv(x, w, b))
    ours = torch.autograd.grad(conv(x, w, b), (x, w, b), grad)
    theirs = torch.autograd.grad(torch.nn.functional.conv1d(x, w, b, dilation=4, padding=padding), (x, w, b), grad)
    for a, c in zip(ours, theirs):
        torch.testing.assert_close(a, c)


@pytest.fixture(scope="module")
def model(tiny_model: Path):
    return load_model(tiny_model)


def test_reconstruction_approaches_the_clip(model, tiny_model: Path) -> None:
    real = model.real(len(model.scales) - 1)
    rec = gen.reconstruct(model, "cpu")[-1]
    untrained = load_model(tiny_model)
    torch.manual_seed(0)
    untrained.generators = [Generator.for_scale(untrained.config, k).eval() for k in range(len(untrained.scales))]
    raw = gen.reconstruct(untrained, "cpu")[-1]
    # the music loss is on magnitude spectrograms, so the measure is spectral
    assert spectral_distance(rec, real) < 0.8
    assert spectral_distance(rec, real) < 0.5 * spectral_distance(raw, real)


def test_variations_keep_the_spectral_profile_but_are_new(model) -> None:
    real = model.real(len(model.scales) - 1)
    rng = gen.generator_for(3)
    variations = [gen.variation(model, "cpu", 1.5, rng) for _ in range(3)]
    noise = np.random.default_rng(1).standard_normal(len(real)).astype(np.float32) * real.std()
    for v in variations:
        assert len(v) == len(real)
        assert spectral_distance(v, real) < 0.5 * spectral_distance(noise, real)
        assert np.linalg.norm(v - real) > 0.3 * np.linalg.norm(real)  # not a copy
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert np.linalg.norm(variations[a] - variations[b]) > 0.3 * np.linalg.norm(real)
    same = gen.variation(model, "cpu", 1.5, gen.generator_for(3))
    np.testing.assert_array_equal(same, variations[0])  # a seed makes it repeatable


def test_inpainting_fills_the_gap_with_the_clips_frequencies(model) -> None:
    real = model.real(len(model.scales) - 1)
    holed = real.copy()
    start, end = 2000, 2600
    holed[start:end] = 0
    out = gen.inpaint(model, "cpu", holed, [(start, end)], gen.generator_for(1))
    gap = out[start:end]
    assert np.sqrt(np.mean(gap ** 2)) > 0.2 * np.sqrt(np.mean(real[start:end] ** 2))
    np.testing.assert_array_equal(out[:start - 300], holed[:start - 300])  # outside: the input
    # the gap's energy sits around the notes (600-1000 Hz), not spread like noise
    assert band_energy(gap, 600, 1000) > 3 * band_energy(gap, 1000, 1400)


def test_bandwidth_extension_adds_energy_above_the_inputs_cutoff(model) -> None:
    real = model.real(len(model.scales) - 1)
    low = scipy.signal.resample_poly(real, 1, 2).astype(np.float32)  # 2 kHz: nothing above 1 kHz
    out = gen.extend(model, "cpu", low, 2000, gen.generator_for(2))
    plain = scipy.signal.resample_poly(low, 2, 1)
    assert len(out) == len(real)
    assert band_energy(out, 1100, 2000) > 10 * band_energy(plain, 1100, 2000)
    assert band_energy(out, 0, 900) == pytest.approx(band_energy(plain, 0, 900), rel=0.1)  # the band kept


def test_conditioning_keeps_the_coarse_signal(model) -> None:
    real = model.real(len(model.scales) - 1)
    lowpass = scipy.signal.firwin(255, 1000, fs=SR)
    below = np.convolve(real, lowpass, "same")

    def error(x: np.ndarray) -> float:
        return float(np.linalg.norm(np.convolve(x, lowpass, "same") - below) / np.linalg.norm(below))

    kept = gen.condition(model, "cpu", real, SR, 2500, gen.generator_for(4))  # the clip up to 1250 Hz
    free = gen.variation(model, "cpu", 1.5, gen.generator_for(4))
    assert error(kept) < 0.6 * error(free)  # measured 0.52 against 1.31


def test_a_stopped_training_resumes_to_the_same_model(tmp_path: Path) -> None:
    settings = {"channels": 16, "seconds": 1.0}
    whole = tmp_path / "whole"
    assert train_tiny(whole, epochs=12, **settings)
    halves = tmp_path / "halves"
    assert not train_tiny(halves, epochs=12, report=Quiet(stop_after=17), **settings)  # stops in scale 2
    assert (halves / "checkpoint.pt").exists()
    manifest = json.loads((halves / "caw.json").read_text())
    assert [s["epochs_done"] for s in manifest["scales"]][:2] == [12, 0]
    assert train(halves, "cpu", Quiet(), threads=1)
    done = json.loads((halves / "caw.json").read_text())
    assert [s["epochs_done"] for s in done["scales"]] == [12] * len(done["scales"])
    for k in range(len(done["scales"])):
        a, b = load_tensors(whole / f"generator{k}.pt"), load_tensors(halves / f"generator{k}.pt")
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert not (halves / "checkpoint.pt").exists()
    assert (halves / f"losses@{done['scales'][-1]['fs']}Hz.png").stat().st_size > 1000
