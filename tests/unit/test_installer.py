"""install/installer.py's pieces: Pd's search path in ~/.pdsettings added and taken away without
touching the rest, the code copied only where it differs, and --uninstall removing exactly what the
manifest says (the whole run is tests/install, in a Debian root)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from pdbridge.config import PROJECT_ROOT


def _load() -> ModuleType:
    sys.path.insert(0, str(PROJECT_ROOT / "install"))
    spec = importlib.util.spec_from_file_location("installer", PROJECT_ROOT / "install" / "installer.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["installer"] = module
    spec.loader.exec_module(module)
    return module


installer = _load()
THEIRS = "npath: 2\npath1: /home/s/pd-libs\npath2: /usr/local/lib/pd-externals/cyclone\nverbose: 0\nflags: -rt\n"


def test_search_path_is_added_once_after_the_users_own(tmp_path: Path) -> None:
    settings = tmp_path / ".pdsettings"
    settings.write_text(THEIRS)
    manifest: dict = {}
    folder = tmp_path / "app" / "pd_patches"
    assert installer.register_with_pd(settings, folder, manifest)
    assert not installer.register_with_pd(settings, folder, manifest)  # a second run adds nothing
    text = settings.read_text()
    assert text.startswith(f"npath: 3\npath1: /home/s/pd-libs\npath2: /usr/local/lib/pd-externals/cyclone\n"
                           f"path3: {folder}\n")
    assert "verbose: 0\nflags: -rt\n" in text and manifest == {"pdsettings_created": False}
    installer.unregister_from_pd(settings, folder, created=False)
    assert settings.read_text() == THEIRS


def test_a_settings_file_the_installer_made_goes_with_it(tmp_path: Path) -> None:
    settings = tmp_path / ".pdsettings"
    manifest: dict = {}
    installer.register_with_pd(settings, tmp_path / "f", manifest)
    assert manifest == {"pdsettings_created": True} and settings.read_text() == f"npath: 1\npath1: {tmp_path / 'f'}\n"
    installer.unregister_from_pd(settings, tmp_path / "f", created=True)
    assert not settings.exists()


def test_code_is_copied_only_where_it_differs(tmp_path: Path) -> None:
    app = tmp_path / "app"
    launcher = tmp_path / "bin" / "pdbridge"
    first = installer.sync_app(app, launcher)
    assert first > 50 and (app / "pdbridge" / "hub.py").exists() and not (app / "tests").exists()
    plugin = (app / "pd_patches" / "pdbridge-plugin.tcl").read_text()
    assert f"variable launcher {{{launcher}}}" in plugin and "@LAUNCHER@" not in plugin
    assert installer.sync_app(app, launcher) == 0
    (app / "pdbridge" / "hub.py").write_text("changed")
    (app / "pdbridge" / "gone.py").write_text("not in the project")
    assert installer.sync_app(app, launcher) == 2
    assert not (app / "pdbridge" / "gone.py").exists()
    assert (app / "pdbridge" / "hub.py").read_bytes() == (PROJECT_ROOT / "pdbridge" / "hub.py").read_bytes()


def test_uninstall_removes_what_the_manifest_names_and_nothing_else(tmp_path: Path) -> None:
    home = tmp_path / "home"
    layout = installer.Layout(home / ".local/share/pdbridge", home / ".local/bin", home=home)
    home.mkdir()
    manifest: dict = {}
    installer.note_new_folders(manifest, home, layout.prefix, layout.launcher.parent, layout.desktop.parent,
                               layout.state)
    assert str(home / ".local") in manifest["made_folders"] and str(home) not in manifest["made_folders"]
    for sub in ("app/pd_patches", "envs/core", "models/all_instruments", "pd"):
        (layout.prefix / sub).mkdir(parents=True)
    layout.pd_folder.symlink_to(layout.app / "pd_patches")
    layout.pdsettings.write_text(THEIRS)
    installer.register_with_pd(layout.pdsettings, layout.pd_folder, manifest)
    installer.write_if_changed(layout.launcher, installer.launcher_text(layout.prefix), 0o755)
    installer.write_if_changed(layout.desktop, installer.desktop_text(layout.pd_folder))
    (layout.state / "logs").mkdir(parents=True)
    (layout.state / "hub-41750.txt").write_text("state down;\n")
    (layout.state / "jobs" / "train-1").mkdir(parents=True)
    manifest.update(launcher=str(layout.launcher), desktop=str(layout.desktop), pdsettings=str(layout.pdsettings),
                    registered=str(layout.pd_folder))
    layout.write_manifest(manifest)
    other = home / ".local/share/applications/other.desktop"
    other.write_text("[Desktop Entry]\n")
    assert installer.uninstall(layout) == 0
    assert sorted(p.name for p in layout.prefix.iterdir()) == ["models"]  # the student's download stays
    assert not layout.launcher.exists() and not layout.desktop.exists() and other.exists()
    assert layout.pdsettings.read_text() == THEIRS
    assert sorted(p.name for p in layout.state.iterdir()) == ["jobs"]  # a training run stays too
    assert not (home / ".local/bin").exists()  # made by the installer, empty now
    assert (home / ".local/share/applications").exists()  # someone else's file is in it


def test_a_launcher_someone_else_wrote_is_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    layout = installer.Layout(home / "prefix", home / "bin", home=home)
    layout.prefix.mkdir(parents=True)
    layout.launcher.parent.mkdir(parents=True)
    layout.launcher.write_text("#!/bin/sh\necho my own pdbridge\n")
    layout.write_manifest({"launcher": str(layout.launcher)})
    installer.uninstall(layout)
    assert layout.launcher.read_text() == "#!/bin/sh\necho my own pdbridge\n"
    assert not layout.prefix.exists()
