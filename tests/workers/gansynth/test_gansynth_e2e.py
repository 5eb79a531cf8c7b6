"""[pdbridge.gansynth] in a real headless Pd, through the hub, to the GANSynth worker in the tf environment.

Reference audio comes from magenta's own ``Model.generate_samples_from_z`` in this process, on the
same checkpoint loaded with the worker's batch size, and is compared with ``atol=1e-6`` (in practice
the samples are identical: same graph, same kernels).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from pdharness import HubThread, PdDriver, require_worker

from pdbridge.pd import find_pd
from workers.gansynth.ganspace import Components, compute_components
from workers.gansynth.hallucinate import SETTINGS, NoteShape, overlap_add
from workers.gansynth.model import GANSynth, slerp

pytestmark = pytest.mark.skipif(find_pd() is None, reason="Pure Data is not installed")

ARRAYS_PATCH = Path(__file__).parent / "patches" / "gansynth_arrays.pd"
ATOL = 1e-6


@pytest.fixture(scope="module")
def gansynth_hub(hub: HubThread) -> HubThread:
    """The shared hub, once we know the gansynth worker's environment exists."""
    require_worker("gansynth")
    return hub


@pytest.fixture(scope="module")
def pd(gansynth_hub: HubThread) -> Iterator[PdDriver]:
    """One Pd for the module (the worker keeps the model loaded between tests), arrays patch beside it."""
    import pdharness

    saved = pdharness.HEADLESS_FLAGS
    pdharness.HEADLESS_FLAGS = (*saved, "-open", str(ARRAYS_PATCH))
    try:
        driver = PdDriver(gansynth_hub.port, "gansynth", timeout=300)
    finally:
        pdharness.HEADLESS_FLAGS = saved
    yield driver
    driver.close()


@pytest.fixture(scope="module")
def loaded(pd: PdDriver, tiny_ckpt: Path) -> PdDriver:
    pd.send("load", str(tiny_ckpt))
    assert pd.result("loaded") == [64000.0, 16000.0]
    return pd


@pytest.fixture(scope="module")
def pca_file(tiny_model: GANSynth, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Components]:
    comps = compute_components(tiny_model, "conv0", random_z_count=400, batch_size=100, seed=0, components=16)
    return comps.save(tmp_path_factory.mktemp("pca") / "tiny_conv0_pca_400.npz"), comps


def test_random_z_then_note_equals_magenta_generate(loaded: PdDriver, tiny_models) -> None:
    tiny_model = tiny_models(8)  # the worker's batch size
    pd = loaded
    pd.send("info")
    pd.result("checkpoint")
    assert pd.result("pitches") == [float(p) for p in range(24, 85)]
    assert pd.result("batch_size") == [8.0]
    pd.send("randomize_z", "gz-1", "gz-2", "--seed", 3)
    assert pd.result("randomized") == []
    z1, z2 = pd.read_array("gz-1"), pd.read_array("gz-2")
    expected = np.random.default_rng(3).standard_normal((2, 256)).astype(np.float32)
    np.testing.assert_array_equal(np.stack([z1, z2]), expected)

    pd.send("synthesize", "gz-1", "gs-1", 60, "gz-2", "gs-2", 41)
    assert pd.result("synthesized") == []
    reference = tiny_model.model.generate_samples_from_z(np.stack([z1, z2]).astype(np.float64), [60, 41])
    np.testing.assert_allclose(pd.read_array("gs-1"), reference[0], atol=ATOL)
    np.testing.assert_allclose(pd.read_array("gs-2"), reference[1], atol=ATOL)


def test_slerp_endpoints_are_the_inputs(loaded: PdDriver) -> None:
    pd = loaded
    pd.send("randomize_z", "gz-1", "gz-2", "--seed", 4)
    pd.result("randomized")
    a, b = pd.read_array("gz-1"), pd.read_array("gz-2")
    for amount, want in ((0, a), (1, b)):
        pd.send("slerp_z", "gz-1", "gz-2", "gz-3", amount)
        assert pd.result("slerped") == []
        np.testing.assert_allclose(pd.read_array("gz-3"), want, atol=1e-6)
    pd.send("slerp_z", "gz-1", "gz-2", "gz-3", 0.5)
    pd.result("slerped")
    mid = pd.read_array("gz-3")
    assert not np.allclose(mid, a) and not np.allclose(mid, b)


def test_untrained_pitch_and_bad_arrays_are_errors_on_the_outlet(loaded: PdDriver) -> None:
    pd = loaded
    pd.send("synthesize", "gz-1", "gs-1", 90)
    message = pd.error()
    assert "not trained on pitch 90" in message and "24-84" in message
    pd.send("synthesize", "gs-4", "gs-1", 60)
    assert "a latent vector has 256" in pd.error()
    pd.send("synthesize", "gz-1", "gs-1")
    assert "usage: synthesize" in pd.error()
    pd.send("synthesize", "gz-1", "nowhere", 60)
    assert "nowhere" in pd.error()


@pytest.fixture
def with_components(loaded: PdDriver, tiny_models, pca_file: tuple[Path, Components]):
    """The loaded object with the test's 16 GANSpace components, the matching in-process model, the components."""
    path, comps = pca_file
    loaded.send("load_ganspace_components", str(path), "gamps")
    assert loaded.result("loaded_pca") == [16.0]
    return loaded, tiny_models(8), comps  # 8: the worker's batch size


def test_ganspace_sliders_noz_and_hallucinations(with_components) -> None:
    pd, tiny_model, comps = with_components
    assert len(pd.read_array("gamps")) == 16

    amps = np.zeros(16, np.float32)
    amps[[0, 3]] = [1.5, -2.0]
    pd.write_array("gamps", amps)
    pd.send("randomize_z", "gz-1", "--seed", 5)
    pd.result("randomized")
    z = pd.read_array("gz-1").astype(np.float64)[None]
    pd.send("synthesize", "gz-1", "gs-1", 32)
    pd.result("synthesized")
    edited = tiny_model.generate(z, [32], offsets=("conv0", comps.offset(amps)))
    np.testing.assert_allclose(pd.read_array("gs-1"), edited[0], atol=ATOL)
    assert np.abs(edited - tiny_model.generate(z, [32])).max() > 1e-3

    pd.send("synthesize_noz", "gs-2", 32, "gamps", "--", "gs-3", 40, 0, 0, 1)
    assert pd.result("synthesized") == []
    noz = tiny_model.generate_from_layer("conv0", np.stack([comps.layer_values(amps), comps.layer_values([0, 0, 1])]))
    np.testing.assert_allclose(pd.read_array("gs-2"), noz[0], atol=ATOL)
    np.testing.assert_allclose(pd.read_array("gs-3"), noz[1], atol=ATOL)

    pd.send("hallucinate", "gs-4", 3, 1, 0.5, 0.1, 0.2, 0.5, 0.3)
    n = pd.result("hallucinated")[0]
    assert n == (3 - 1) * (1 + 1) * 8000 + 16000  # 5 notes every 0.5 s, each 1 s long after the trim
    clip = pd.read_array("gs-4")
    assert len(clip) == n and np.abs(clip).max() == pytest.approx(0.5, abs=1e-6)
    # Attack from 0; the linear release (4800 samples) ends at 1/4800 of the note's peak.
    assert clip[0] == 0.0 and abs(clip[-1]) < 1e-3 and np.abs(clip[-200:]).max() < 0.5 * 200 / 4800 * 2


def test_halluseq_steps_state_and_playback(with_components) -> None:
    pd, tiny_model, comps = with_components
    first = np.zeros(16, np.float32)
    first[1] = 2.0
    pd.write_array("gamps", first)
    pd.send("add_step")
    assert pd.result("step") == ["index", 1.0] and pd.result("step") == ["count", 2.0]
    assert pd.result("settings") == ["interp_steps", 1.0]
    pd.result("updated")
    np.testing.assert_array_equal(pd.read_array("gamps"), first)  # the new step is a copy
    second = np.zeros(16, np.float32)
    second[2] = -1.0
    pd.write_array("gamps", second)
    pd.send("next_step")
    assert pd.result("step") == ["index", 0.0]
    pd.result("updated")
    np.testing.assert_array_equal(pd.read_array("gamps"), first)

    for setting, value in (("interp_steps", 2), ("sample_spacing", 0.25), ("start_trim", 0.0), ("attack", 0.1),
                           ("sustain", 0.3), ("release", 0.1)):
        pd.send(setting, value)
        assert pd.result("settings") == [setting, pytest.approx(value)]
        pd.result("updated")
    pd.send("hallucinate_noz", "gs-4")
    n = pd.result("hallucinated")[0]
    notes = tiny_model.generate_from_layer("conv0", np.stack(
        [comps.layer_values(e) for e in (first, (first + second) / 2, second)]))
    expected = overlap_add(notes, 0.25, NoteShape(0.0, 0.1, 0.3, 0.1), 16000)
    assert n == len(expected) == 2 * 4000 + 8000
    np.testing.assert_allclose(pd.read_array("gs-4"), expected, atol=ATOL)

    pd.send("attack", -1)
    assert "attack must be >= 0" in pd.error()


# -- the course exercises as shipped in pd_patches/examples ------------------------------------------
EXAMPLES = Path(__file__).resolve().parents[3] / "pd_patches" / "examples"
TOP_LEVEL = ("#X obj ", "#X msg ", "#X text ", "#X floatatom ", "#X symbolatom ", "#X listbox ")


def instrument(source: Path, dest: Path, clicks: dict[str, str]) -> Path:
    """Copy an example, adding ``[r gstest-<key>]`` into each box whose line matches ``clicks[key]`` and
    ``[s drv-result]``/``[s drv-status]`` after its [pdbridge.gansynth], so the test drives the patch's
    own boxes and sees what its object says."""
    lines = source.read_text().splitlines()
    index, depth, found = 0, 0, {}
    for line in lines:
        if line.startswith("#N canvas"):
            depth += 1
            continue
        if line.startswith("#X restore"):
            depth -= 1
        elif depth != 1 or not line.startswith(TOP_LEVEL):
            continue
        for key, pattern in clicks.items():
            if pattern in line and not line.startswith("#X text"):
                found.setdefault(key, index)
        if "pdbridge.gansynth;" in line:
            found["object"] = index
        index += 1
    assert set(found) == {*clicks, "object"}, (found, clicks)
    extra, n = [], index
    for key in clicks:
        extra += [f"#X obj 0 0 r gstest-{key};", f"#X connect {n} 0 {found[key]} 0;"]
        n += 1
    extra += ["#X obj 0 0 s drv-result;", f"#X connect {found['object']} 0 {n} 0;",
              "#X obj 0 0 s drv-status;", f"#X connect {found['object']} 1 {n + 1} 0;"]
    dest.write_text("\n".join(lines + extra) + "\n")
    return dest


@pytest.fixture
def example(gansynth_hub: HubThread, tmp_path: Path) -> Iterator:
    """``example(name, clicks)`` opens an instrumented copy in tmp_path beside a driver; closed after."""
    import pdharness

    drivers: list[PdDriver] = []

    def start(name: str, clicks: dict[str, str]) -> PdDriver:
        patch = instrument(EXAMPLES / name, tmp_path / name, clicks)
        saved = pdharness.HEADLESS_FLAGS
        pdharness.HEADLESS_FLAGS = (*saved, "-path", str(ARRAYS_PATCH.parent), "-open", str(patch))
        try:
            driver = PdDriver(gansynth_hub.port, "gstestclick", timeout=120)
        finally:
            pdharness.HEADLESS_FLAGS = saved
        drivers.append(driver)
        return driver

    yield start
    for d in drivers:
        d.close()


def click(pd: PdDriver, key: str, value: object = "bang") -> None:
    pd.send(f"gstest-{key}", value)


def test_example_gansynth_random_z_to_note(example, tiny_ckpt: Path, tiny_models, tmp_path: Path) -> None:
    tiny_model = tiny_models(8)  # the worker's batch size
    (tmp_path / "all_instruments").symlink_to(tiny_ckpt)
    pd = example("gansynth.pd", {"load": "load all_instruments", "rand": "randomize_z",
                                     "synth": "synthesize gs-z gs-sound 52"})
    click(pd, "load")
    assert pd.result("loaded") == [64000.0, 16000.0]
    click(pd, "rand")
    pd.result("randomized")
    click(pd, "synth")
    pd.result("synthesized")
    z = pd.read_array("gs-z").astype(np.float64)
    np.testing.assert_allclose(pd.read_array("gs-sound"), tiny_model.generate(z[None], [52])[0], atol=ATOL)


def test_example_gansynth_multi_chord_and_slerp(example, tiny_ckpt: Path, tiny_models,
                                                tmp_path: Path) -> None:
    tiny_model = tiny_models(4)  # the worker's batch size
    (tmp_path / "all_instruments").symlink_to(tiny_ckpt)
    pd = example("gansynth_multi.pd", {"load": "load all_instruments 4", "rand": "randomize_z",
                                           "chord": "synthesize gsm-z1", "amount": "hsl"})
    click(pd, "load")
    pd.result("loaded")
    click(pd, "rand")
    pd.result("randomized")
    click(pd, "amount", 0.25)
    pd.result("slerped")
    pd.result("synthesized")  # the patch makes the in-between note after each slerp
    z1, z2, z3 = (pd.read_array(f"gsm-z{i}").astype(np.float64) for i in (1, 2, 3))
    np.testing.assert_allclose(z3, slerp(z1, z2, 0.25), atol=1e-6)
    np.testing.assert_allclose(pd.read_array("gsm-s3"), tiny_model.generate(z3[None], [59])[0], atol=ATOL)
    click(pd, "chord")
    pd.result("synthesized")
    z4 = pd.read_array("gsm-z4").astype(np.float64)
    np.testing.assert_allclose(pd.read_array("gsm-s4"), tiny_model.generate(z4[None], [62])[0], atol=ATOL)


@pytest.fixture
def pruu(custom_ckpt: Path, tmp_path: Path) -> tuple[Path, Components]:
    """The course examples' model folder name, holding a custom (meta.json) model and its components."""
    root = tmp_path / "pruu"
    shutil.copytree(custom_ckpt, root, ignore=shutil.ignore_patterns("*.meta"))
    model = GANSynth.load(root, batch_size=100)
    try:
        comps = compute_components(model, "conv0", random_z_count=300, batch_size=100, seed=0, components=11)
    finally:
        model.close()
    comps.save(root / "pruu_conv0_pca_8192.npz")
    return root, comps


def test_example_ganspacesynth_sliders_make_notes(example, pruu: tuple[Path, Components]) -> None:
    root, comps = pruu
    clicks = {"load": "load pruu 1", "pca": "load_ganspace_components", "rand": "randomize_z", "s0": "hsl"}
    pd = example("ganspacesynth.pd", clicks)
    click(pd, "load")
    pd.result("loaded")
    click(pd, "pca")
    assert pd.result("loaded_pca") == [11.0]
    click(pd, "rand")
    pd.result("randomized")
    pd.result("synthesized")  # a new z makes a note
    for value in (0.5, 1.0, 1.5, 2.0):  # moves faster than notes are made: merged, never queued up
        click(pd, "s0", value)
    count = 0
    while True:
        try:
            pd.expect("result", "synthesized", timeout=10)
            count += 1
        except AssertionError:
            break
    assert 1 <= count <= 4
    amps = pd.read_array("gss-amps")
    np.testing.assert_array_equal(amps, [2.0] + [0.0] * 10)
    model = GANSynth.load(root, batch_size=1)
    try:
        z = pd.read_array("gss-z").astype(np.float64)[None]
        expected = model.generate(z, [32], offsets=("conv0", comps.offset(amps)))[0]
    finally:
        model.close()
    np.testing.assert_allclose(pd.read_array("gss-sound"), expected, atol=ATOL)


def test_example_halluseq_steps_and_sequence(example, pruu: tuple[Path, Components]) -> None:
    # "floatatom": the first number box, interp_steps; "hsl": the first slider, component 0
    clicks = {"load": "load pruu 1", "pca": "load_ganspace_components", "add": "add_step",
              "interp": "floatatom", "play": "hallucinate_noz", "slider0": "hsl"}
    pd = example("ganspacesynth_halluseq.pd", clicks)
    click(pd, "load")
    pd.result("loaded")
    click(pd, "pca")
    pd.result("loaded_pca")
    assert [pd.result("step"), pd.result("step")] == [["index", 0.0], ["count", 1.0]]  # the patch asks
    assert [pd.result("settings")[0] for _ in range(6)] == list(SETTINGS)
    click(pd, "slider0", 2.0)
    click(pd, "add")
    assert [pd.result("step"), pd.result("step")] == [["index", 1.0], ["count", 2.0]]
    pd.result("updated")
    click(pd, "interp", 2)
    assert pd.result("settings") == ["interp_steps", 2.0]
    click(pd, "play")
    n = pd.result("hallucinated")[0]
    assert n == 2 * round(0.2 * 16000) + 1.5 * 16000  # 3 notes, defaults: spacing 0.2, 0.5+0.5+0.5 s
    assert len(pd.read_array("hallu-out")) == n
