"""make dist: deken's names and layout, the object list, checksums, and the same bytes twice."""
from __future__ import annotations

import hashlib
import importlib.util
import sys
import zipfile
from pathlib import Path

from pdbridge import __version__
from pdbridge.config import PROJECT_ROOT

spec = importlib.util.spec_from_file_location("make_dist", PROJECT_ROOT / "install" / "make_dist.py")
assert spec and spec.loader
make_dist = importlib.util.module_from_spec(spec)
sys.modules["make_dist"] = make_dist
spec.loader.exec_module(make_dist)


def test_packages_follow_deken_conventions(tmp_path: Path) -> None:
    make_dist.build(tmp_path)
    dek = tmp_path / f"pdbridge[v{__version__}].dek"
    sources = tmp_path / f"pdbridge[v{__version__}](Sources).dek"
    names = zipfile.ZipFile(dek).namelist()
    assert all(n.startswith("pdbridge/") for n in names)  # one top folder named after the library
    for wanted in ("pdbridge.gansynth.pd", "pdbridge.gansynth-help.pd", "pdbridge.conn.pd",
                   "examples/gansynth.pd", "pdbridge-plugin.tcl", "README.txt"):
        assert f"pdbridge/{wanted}" in names, wanted
    plugin = zipfile.ZipFile(dek).read("pdbridge/pdbridge-plugin.tcl").decode()
    assert "@LAUNCHER@" not in plugin and "variable launcher {}" in plugin
    assert "install/install.sh" in zipfile.ZipFile(dek).read("pdbridge/README.txt").decode()
    assert "pdbridge/install/installer.py" in zipfile.ZipFile(sources).namelist()
    for path in (dek, sources):
        digest, name = (tmp_path / f"{path.name}.sha256").read_text().split()
        assert digest == hashlib.sha256(path.read_bytes()).hexdigest() and name == path.name
    objects = (tmp_path / f"{dek.name}.txt").read_text().splitlines()
    assert "pdbridge.samplernn\tSampleRNN: new sound, sample by sample, into Pd arrays" in objects


def test_the_same_tree_gives_the_same_bytes(tmp_path: Path) -> None:
    a, b = make_dist.build(tmp_path / "a")[0], make_dist.build(tmp_path / "b")[0]
    assert a.read_bytes() == b.read_bytes()
