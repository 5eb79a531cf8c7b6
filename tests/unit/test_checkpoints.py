"""Short checkpoint names: a path as written wins, a bare name falls back to the models folder."""
from pathlib import Path
from typing import Union

import pytest

from workers.runtime import PdError
from workers.runtime.checkpoints import MODELS_ENV, find_checkpoint, models_folder


class Patch:
    """A request's path resolution relative to a patch folder (as Request.resolve_path does)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def resolve_path(self, path: Union[str, float]) -> Path:
        p = Path(str(path)).expanduser()
        return p if p.is_absolute() else self.folder / p


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    (folder / "all_instruments").mkdir(parents=True)
    (folder / "vintage.ts").write_bytes(b"ts")
    monkeypatch.setenv(MODELS_ENV, str(folder))
    return folder


def test_short_name_finds_a_fetched_folder_or_file(tmp_path: Path, models: Path) -> None:
    req = Patch(tmp_path / "patch")
    assert find_checkpoint(req, "all_instruments", "checkpoint") == models / "all_instruments"
    assert find_checkpoint(req, "vintage", "export", suffixes=(".ts",)) == models / "vintage.ts"


def test_the_patch_folder_wins_over_the_models_folder(tmp_path: Path, models: Path) -> None:
    own = tmp_path / "patch" / "all_instruments"
    own.mkdir(parents=True)
    assert find_checkpoint(Patch(tmp_path / "patch"), "all_instruments", "checkpoint") == own


def test_a_path_is_never_looked_up_by_name(tmp_path: Path, models: Path) -> None:
    with pytest.raises(PdError, match="checkpoint not found: .*sub/all_instruments$"):
        find_checkpoint(Patch(tmp_path), "sub/all_instruments", "checkpoint")


def test_missing_name_names_both_places(tmp_path: Path, models: Path) -> None:
    with pytest.raises(PdError) as err:
        find_checkpoint(Patch(tmp_path), "acoustic_only", "GANSynth checkpoint folder")
    assert str(tmp_path / "acoustic_only") in str(err.value) and str(models) in str(err.value)
    assert "pdbridge models list" in str(err.value)


def test_models_folder_default_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(MODELS_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert models_folder() == tmp_path / "pdbridge" / "models"


def test_suffix_beside_the_patch_comes_before_the_models_folder(tmp_path: Path, models: Path) -> None:
    (tmp_path / "vintage.ts").write_bytes(b"mine")
    assert find_checkpoint(Patch(tmp_path), "vintage", "export", suffixes=(".ts",)) == tmp_path / "vintage.ts"
