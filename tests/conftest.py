"""Shared fixtures: a real hub per test module and real headless Pd processes."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pdharness import HubThread, PdDriver  # noqa: E402


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubThread]:
    h = HubThread(log_dir=tmp_path_factory.mktemp("logs"))
    yield h
    h.stop()


@pytest.fixture
def pd_driver(hub: HubThread) -> Iterator:
    """``pd_driver(model)`` starts a headless Pd wrapping ``[pdbridge.<model>]``; all are closed after."""
    drivers: list[PdDriver] = []

    def start(model: str, **kwargs: object) -> PdDriver:
        d = PdDriver(hub.port, model, **kwargs)  # type: ignore[arg-type]
        drivers.append(d)
        return d

    yield start
    for d in drivers:
        d.close()
