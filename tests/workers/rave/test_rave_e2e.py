"""[pdbridge.rave] in a real headless Pd, through the hub, to the RAVE worker in the torch environment."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from pdharness import HubThread, PdDriver, require_worker
from rave_fixture_exports import NotRave, exports_own, make_export, save, sine

from pdbridge.pd import find_pd
from workers.rave.model import LatentEdits, RaveModel

pytestmark = pytest.mark.skipif(find_pd() is None, reason="Pure Data is not installed")


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rave_e2e")
    return {"v2": make_export(root / "tiny.ts", prior=True), "notrave": save(NotRave(), root / "double.ts"),
            "noisy": make_export(root / "noisy.ts", noise=True)}


@pytest.fixture(scope="module")
def rave_hub(hub: HubThread) -> HubThread:
    """The shared hub, once we know the rave worker's environment exists."""
    require_worker("rave")
    return hub


LATENT_PATCH = Path(__file__).parent / "patches" / "rave_latents.pd"


@pytest.fixture
def pd(rave_hub: HubThread) -> Iterator[PdDriver]:
    """The test driver, with rave_latents.pd opened beside it for the latent arrays tl-0 ... tl-3."""
    driver = PdDriver(rave_hub.port, "rave", extra_patches=[LATENT_PATCH])
    yield driver
    driver.close()


def test_load_forward_sample_and_edits_through_pd(pd: PdDriver, exports: dict[str, Path]) -> None:
    pd.send("load", str(exports["v2"]))
    assert pd.result("loaded") == [44100.0, 4.0, 64.0, "encode", "decode", "forward", "prior"]

    x = sine(0.25, 44100)
    local = RaveModel.load(exports["v2"])
    pd.write_array("drv-a", x)
    pd.send("forward", "drv-a", "drv-b")
    assert pd.result("forwarded") == ["drv-b", float(len(x))]
    np.testing.assert_allclose(pd.read_array("drv-b"), local.forward(x)[0][0], atol=1e-6)

    pd.send("bias", 2, 0.5)
    assert pd.result("bias") == [2.0, 0.5]
    pd.send("forward", "drv-a", "drv-c", "--scale", 0, -1)
    pd.result("forwarded")
    edited = local.forward(x, edits=LatentEdits(bias={2: 0.5}, scale={0: -1.0}))[0][0]
    np.testing.assert_allclose(pd.read_array("drv-c"), edited, atol=1e-6)

    pd.send("clear")
    pd.result("cleared")
    pd.send("sample", "drv-c", 0.5, "--temp", 1)
    assert pd.result("sampled") == ["drv-c", 22050.0]
    np.testing.assert_allclose(pd.read_array("drv-c"), local.sample(0.5, 1.0)[0][0], atol=1e-6)


def test_latent_arrays_round_trip_through_pd(pd: PdDriver, exports: dict[str, Path]) -> None:
    local = RaveModel.load(exports["v2"])
    pd.send("load", str(exports["v2"]))
    pd.result("loaded")
    x = sine(0.2, 44100)
    pd.write_array("drv-a", x)
    pd.send("encode", "drv-a", "tl")
    frames = -(-len(x) // 64)
    assert pd.result("encoded") == ["tl", 4.0, float(frames)]
    z = np.stack([pd.read_array(f"tl-{d}") for d in range(4)])
    np.testing.assert_allclose(z, local.encode(x), atol=1e-6)

    drawn = z.copy()
    drawn[1] = np.linspace(-2, 2, frames, dtype=np.float32)  # as if drawn with the mouse
    pd.write_array("tl-1", drawn[1])
    pd.send("decode", "tl", "drv-b", "--bias", 3, 0.25)
    assert pd.result("decoded") == ["drv-b", float(frames * 64)]
    expected = local.decode(drawn, LatentEdits(bias={3: 0.25}))[0]
    np.testing.assert_allclose(pd.read_array("drv-b"), expected, atol=1e-6)

    pd.write_array("tl-2", np.zeros(frames - 1, np.float32))
    pd.send("decode", "tl", "drv-b")
    assert "same length" in pd.error()


def test_seeded_forward_and_encode_are_the_exports_own_through_pd(pd: PdDriver, exports: dict[str, Path]) -> None:
    pd.send("load", str(exports["noisy"]))
    pd.result("loaded")
    x = sine(0.25, 44100)  # 11025 samples: 172 frames of 64 and a partial one
    pd.write_array("drv-a", x)
    pd.send("forward", "drv-a", "drv-b", "--seed", 5, "--latent", "tl")
    assert pd.result("forwarded") == ["drv-b", float(len(x))]
    # atol: the worker's torch may use another thread count, which can reorder float sums.
    expected = exports_own(exports["noisy"], "forward", x, 5)[0, :len(x)]
    np.testing.assert_allclose(pd.read_array("drv-b"), expected, rtol=0, atol=1e-6)
    encoded = exports_own(exports["noisy"], "encode", x, 5)
    assert encoded.shape == (4, 173)
    np.testing.assert_allclose(np.stack([pd.read_array(f"tl-{d}") for d in range(4)]), encoded, rtol=0, atol=1e-6)
    pd.send("encode", "drv-a", "tl", "--seed", 6)
    assert pd.result("encoded") == ["tl", 4.0, 173.0]
    np.testing.assert_allclose(np.stack([pd.read_array(f"tl-{d}") for d in range(4)]),
                               exports_own(exports["noisy"], "encode", x, 6), rtol=0, atol=1e-6)


def test_errors_a_student_can_act_on(pd: PdDriver, exports: dict[str, Path]) -> None:
    pd.send("forward", "drv-a", "drv-b")
    assert "load <file.ts>" in pd.error()
    pd.send("load", str(exports["notrave"]))
    assert "not a RAVE export" in pd.error()
    pd.send("load", str(exports["v2"]))
    pd.result("loaded")
    pd.send("encode", "drv-a", "lat")
    message = pd.error()
    assert "lat-0" in message and "4 latent dimensions" in message
    pd.send("decode", "lat", "drv-b", "--bias", 7, 1)
    assert "dimensions 0 to 3" in pd.error()
    pd.send("bias", 1)
    assert "pairs" in pd.error()
