"""doctor names each missing piece with the fix that applies here (install.sh for a student's
install, make for a developer's checkout)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pdbridge import doctor


@pytest.fixture
def student(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A student's install: no Makefile beside the code; Pd's settings in a temporary home."""
    monkeypatch.setattr(doctor, "PROJECT_ROOT", tmp_path / "app")
    monkeypatch.setattr(doctor, "PDSETTINGS", tmp_path / ".pdsettings")
    return tmp_path


def test_missing_search_path_and_plugin_are_named(student: Path) -> None:
    status, text = doctor.check_pd_path()
    assert status == doctor.BAD and "has no pdbridge folder" in text and "install/install.sh" in text
    status, text = doctor.check_autostart()
    assert status == doctor.BAD and "no pdbridge GUI plugin" in text


def test_registered_folder_with_its_plugin_is_ok(student: Path) -> None:
    folder = student / "app" / "pd_patches"
    folder.mkdir(parents=True)
    (folder / "pdbridge.conn.pd").write_text("#N canvas;\n")
    (student / ".pdsettings").write_text(f"npath: 2\npath1: /elsewhere\npath2: {folder}\n")
    assert doctor.check_pd_path() == (doctor.OK, f"Pd finds the pdbridge objects in {folder} (search path in "
                                                 f"{student / '.pdsettings'})")
    assert doctor.check_autostart()[0] == doctor.BAD
    (folder / "pdbridge-plugin.tcl").write_text("# plugin\n")
    assert doctor.check_autostart()[0] == doctor.OK


def test_the_fix_named_is_the_one_that_applies(student: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert doctor.env_fix("tf") == "run install/install.sh again"
    (student / "app").mkdir()
    (student / "app" / "Makefile").write_text("")
    assert doctor.env_fix("tf") == "run `make env-tf`"


def test_a_pd_without_its_gui_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "pd").write_text("#!/bin/sh\n")
    (bin_dir / "pd").chmod(0o755)
    monkeypatch.setenv("PDBRIDGE_PD", str(bin_dir / "pd"))
    status, text = doctor.check_pd_gui()
    assert status == doctor.BAD and "sudo apt install puredata-gui" in text
    status, text = doctor.check_pd_extras()
    assert status == doctor.BAD and "sudo apt install puredata-extra" in text
    gui = tmp_path / "usr" / "lib" / "puredata" / "tcl" / "pd-gui.tcl"
    gui.parent.mkdir(parents=True)
    gui.write_text("")
    assert doctor.check_pd_gui() == (doctor.OK, f"Pd's GUI at {gui}")
