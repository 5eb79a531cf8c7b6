"""A clean Debian 12 root for installer tests: debootstrap's minimal system from Debian's own
packages, cached as a tarball (the first build takes about 40 s, unpacking a fresh copy a few).

The root shares this machine's network namespace (so only the package registries are reachable,
as on a lab machine without other internet) and its pip configuration (its indexes and local wheel
folders are bind-mounted read-only), and gets a private /proc, /dev/shm and /tmp. Commands run as
root or as the unprivileged ``student`` user the root is made with.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Optional

MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
"""What a lab image has before pdbridge: Debian's Python 3 (3.11) and nothing of Pd."""
USER = "student"
PYTHON_310 = "/opt/python3.10"
"""Where the test puts a Python 3.10 (Debian 12 has none), as a lab admin would: a relocatable copy
of this machine's, since the machine cannot reach the Python builds uv would download."""


def cache_dir() -> Path:
    path = Path(os.environ.get("PDBRIDGE_TEST_ROOTS", "/var/tmp/pdbridge-test-install"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def base_tarball() -> Path:
    """The debootstrap root as a tarball, built once (its build time is printed as a FIGURE line)."""
    tarball = cache_dir() / f"debian-{SUITE}-minbase.tar"
    if tarball.exists():
        return tarball
    build = cache_dir() / "debootstrap.building"
    shutil.rmtree(build, ignore_errors=True)
    t0 = time.monotonic()
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", SUITE, str(build), MIRROR],
                   check=True, capture_output=True)
    print(f"FIGURE debootstrap {SUITE} minbase: {time.monotonic() - t0:.1f} s", flush=True)
    with tarfile.open(tarball.with_suffix(".tmp"), "w") as t:
        t.add(build, arcname=".")
    tarball.with_suffix(".tmp").rename(tarball)
    shutil.rmtree(build)
    return tarball


class Root:
    """One fresh root, mounted; :meth:`close` unmounts and deletes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mounts: list[Path] = []
        _unmount_under(path)  # a crashed earlier run's mounts (this machine's wheel folders among them)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        with tarfile.open(base_tarball()) as t:
            t.extractall(path, filter="fully_trusted")  # our own debootstrap: devices and owners as made
        shutil.copy("/etc/resolv.conf", path / "etc" / "resolv.conf")
        (path / "etc" / "hosts").write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")  # Pd's GUI
        # connects to Pd through localhost; debootstrap leaves /etc/hosts to the installer of a system
        self._mount("proc", "proc", "-t", "proc")
        self._mount("tmpfs", "dev/shm", "-t", "tmpfs")
        self._mount("tmpfs", "tmp", "-t", "tmpfs")
        for conf in ("/etc/pip.conf", "/etc/ssl/certs/ca-certificates.crt"):  # this machine's indexes and
            if Path(conf).exists():                                           # the authorities it trusts
                shutil.copy(conf, path / conf.lstrip("/"))
        for shared in self._pip_folders():
            self._mount(shared, shared.lstrip("/"), "--bind", "-o", "ro")
        pip_cache = cache_dir() / "pip-cache"
        pip_cache.mkdir(exist_ok=True)
        pip_cache.chmod(0o1777)  # shared by root and the student, like /tmp
        self._mount(str(pip_cache), "var/cache/pip", "--bind")
        self.run(f"useradd --create-home --shell /bin/bash {USER}", user="root")

    @staticmethod
    def _pip_folders() -> list[str]:
        """This machine's local package folders that its pip configuration names (if any)."""
        text = Path("/etc/pip.conf").read_text() if Path("/etc/pip.conf").exists() else ""
        text += " " + os.environ.get("PIP_FIND_LINKS", "")
        found = []
        for word in text.replace("=", " ").split():
            path = word[len("file://"):] if word.startswith("file://") else word
            if path.startswith("/opt/") and Path(path).exists():
                top = "/" + "/".join(Path(path).parts[1:3])
                if top not in found:
                    found.append(top)
        return found

    def _mount(self, source: str, target: str, *options: str) -> None:
        where = self.path / target
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", *options, source, str(where)], check=True)
        if "--bind" in options and "ro" in options:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(where)], check=True)
        self.mounts.append(where)

    def add_python_310(self, source: Path) -> None:
        """Copy a CPython 3.10 in at PYTHON_310, its libpython found relative to itself, on PATH."""
        dest = self.path / PYTHON_310.lstrip("/")
        shutil.copytree(source, dest, symlinks=True)
        for binary in (dest / "bin").glob("python3.10"):
            subprocess.run(["patchelf", "--set-rpath", "$ORIGIN/../lib", str(binary)], check=True)
        (self.path / "usr/local/bin/python3.10").symlink_to(f"{PYTHON_310}/bin/python3.10")

    def run(self, command: str, user: str = USER, timeout: float = 1800, env: Optional[dict[str, str]] = None,
            check: bool = True) -> subprocess.CompletedProcess:
        """``bash -c command`` inside the root, as ``user`` (the student unless said) with a clean
        login environment."""
        home = "/root" if user == "root" else f"/home/{user}"
        base = {"HOME": home, "USER": user, "LANG": "C.UTF-8", "PATH": f"{home}/.local/bin:/usr/local/sbin:"
                "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PIP_CACHE_DIR": "/var/cache/pip",
                "PIP_DEFAULT_TIMEOUT": "60", "DEBIAN_FRONTEND": "noninteractive", **(env or {})}
        if os.environ.get("PIP_FIND_LINKS"):
            base["PIP_FIND_LINKS"] = os.environ["PIP_FIND_LINKS"]
        argv = ["chroot", *(["--userspec", f"{user}:{user}"] if user != "root" else []), str(self.path),
                "/usr/bin/env", "-i", *[f"{k}={v}" for k, v in base.items()], "/bin/bash", "-c",
                f"cd {shlex.quote(home)} && {command}"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{command!r} as {user} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
                                 f"\n--- stderr\n{proc.stderr[-6000:]}")
        return proc

    def close(self) -> None:
        """Unmount everything (also processes' leftovers, found in /proc/mounts), then delete the root."""
        for proc_dir in Path("/proc").iterdir():
            if proc_dir.name.isdigit():
                try:
                    if os.readlink(proc_dir / "root") == str(self.path):
                        os.kill(int(proc_dir.name), 9)
                except OSError:
                    continue
        time.sleep(0.5)
        _unmount_under(self.path)
        shutil.rmtree(self.path)


def _mounted_under(path: Path) -> list[str]:
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1] == str(path) or line.split()[1].startswith(f"{path}/")]


def _unmount_under(path: Path) -> None:
    """Unmount everything below ``path``, deepest first; refuse to go on while anything stays
    mounted, since deleting the root would then reach into the mounted folders."""
    for where in sorted(_mounted_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", where], check=False)
    left = _mounted_under(path)
    if left:
        raise RuntimeError(f"still mounted, not deleting {path}: {left}")
