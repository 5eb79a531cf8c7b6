"""install/build_env.py's choices: CPU or CUDA builds from a (faked) GPU detector, the pins each
gets, the indexes pip is given, and what the stamp depends on."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pdbridge.config import PROJECT_ROOT


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_env", PROJECT_ROOT / "install" / "build_env.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_env"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


build_env = _load()
SPECS = build_env.load_specs()
H200 = build_env.Gpu("NVIDIA H200", 580)
OLD_DRIVER = build_env.Gpu("Quadro P4000", 470)


@pytest.mark.parametrize("env, requested, gpu, expected", [
    ("torch", "auto", None, "cpu"),
    ("torch", "auto", H200, "cuda"),
    ("torch", "auto", OLD_DRIVER, "cpu"),
    ("tf", "auto", build_env.Gpu("RTX 3060", 535), "cuda"),
    ("tf", "auto", build_env.Gpu("RTX 3060", 530), "cpu"),
    ("torch", "cpu", H200, "cpu"),
    ("torch", "cuda", None, "cuda"),  # asked for: built, with the reason saying there is no GPU
    ("core", "auto", H200, "cpu"),  # nothing to accelerate
])
def test_variant_follows_the_gpu_and_its_driver(env: str, requested: str, gpu, expected: str) -> None:
    chosen, why = build_env.choose_variant(requested, SPECS[env], gpu)
    assert chosen == expected, why


def test_reasons_say_what_was_found() -> None:
    assert build_env.choose_variant("auto", SPECS["torch"], OLD_DRIVER)[1] == (
        "Quadro P4000 found, but its driver 470 is older than the 580 the CUDA build needs")
    assert build_env.choose_variant("auto", SPECS["torch"], None)[1] == "no NVIDIA GPU found"


def test_cuda_for_an_environment_without_a_cuda_build_is_an_error() -> None:
    with pytest.raises(ValueError, match="no CUDA variant"):
        build_env.choose_variant("cuda", SPECS["core"], H200)


def test_cuda_pins_replace_the_cpu_torch_and_add_its_libraries() -> None:
    cpu = build_env.requirements(SPECS["torch"], "cpu")
    cuda = build_env.requirements(SPECS["torch"], "cuda")
    assert "torch==2.13.0+cpu" in cpu and "torch==2.13.0+cpu" not in cuda
    assert "torch==2.13.0" in cuda and any(p.startswith("nvidia-cudnn-cu13==") for p in cuda)
    assert [p for p in cuda if p.lower().startswith("torch==")] == ["torch==2.13.0"]
    assert set(cpu) - {"torch==2.13.0+cpu"} <= set(cuda)  # everything else stays pinned as before
    tf = build_env.requirements(SPECS["tf"], "cuda")
    assert "tensorflow==2.15.1" in tf and "nvidia-cudnn-cu12==8.9.4.25" in tf


def test_every_cuda_pin_is_exact() -> None:
    for env in ("torch", "tf"):
        for line in build_env.requirements(SPECS[env], "cuda"):
            assert "==" in line, line


def test_cpu_index_only_when_it_answers(capsys: pytest.CaptureFixture) -> None:
    assert build_env.pip_index_args(SPECS["torch"], "cpu", can_reach=lambda url: True) == [
        "--extra-index-url", "https://download.pytorch.org/whl/cpu"]
    assert build_env.pip_index_args(SPECS["torch"], "cpu", can_reach=lambda url: False) == []
    assert "cannot be reached" in capsys.readouterr().out
    assert build_env.pip_index_args(SPECS["torch"], "cuda", can_reach=lambda url: True) == []


def test_stamp_depends_on_the_variant_and_the_pins() -> None:
    assert build_env.stamp_of(SPECS["torch"], "cpu") != build_env.stamp_of(SPECS["torch"], "cuda")
    changed = dict(SPECS["torch"], fixups=[])
    assert build_env.stamp_of(changed, "cpu") != build_env.stamp_of(SPECS["torch"], "cpu")


def test_gpu_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA H200, 580.65.06'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert build_env.detect_nvidia_gpu() == build_env.Gpu("NVIDIA H200", 580)


def test_python_that_cannot_make_venvs_is_not_used(tmp_path: Path) -> None:
    fake = tmp_path / "python3.99"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -S -c 'import sys; sys.exit(1)'\n")
    fake.chmod(0o755)
    assert build_env.python_version_of(fake) is None
    assert build_env.python_version_of(Path(sys.executable)) == "%d.%d" % sys.version_info[:2]


def test_conda_files_agree_with_the_locks() -> None:
    """environment/<env>.yml pins the same versions as <env>.lock wherever it names a package."""
    import re

    for env in SPECS:
        lock = {build_env._package(l): l.split("==")[1].split("+")[0].strip()
                for l in (PROJECT_ROOT / "environment" / f"{env}.lock").read_text().splitlines()
                if build_env._package(l) and "==" in l}
        yml = (PROJECT_ROOT / "environment" / f"{env}.yml").read_text()
        python = re.search(r"-\s*python=(\d+\.\d+)", yml)
        assert python and python.group(1) == SPECS[env]["python"], env
        for name, version in re.findall(r"^\s*-\s*([A-Za-z0-9_.-]+)=([0-9][^\s#]*)", yml, re.M):
            if name == "python":
                continue
            key = {"pysoundfile": "soundfile"}.get(name, name)
            assert lock.get(key) == version, f"{env}.yml pins {name}={version}, {env}.lock has {lock.get(key)}"
        if "-r " in yml or "--no-deps -r" in yml:
            assert f"{env}.lock" in yml, f"{env}.yml should install {env}.lock"
