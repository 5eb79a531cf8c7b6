"""install/install.sh in a clean Debian 12 root (make test-install; root and debootstrap needed).

One root for the module, in the order a lab goes through it: a student without Pd runs the
installer (told what to ask for; doctor names each missing piece), the admin adds the system
packages, the student runs it again (doctor all ok), a third run changes nothing and is fast, a
demo patch renders sound headless, Pd's GUI under Xvfb finds [pdbridge.diagnostics] by name and
talks to a hub that started with the GUI (screenshot kept), `models fetch` resumes and refuses a
wrong checksum against a loopback server, doctor names what was taken away, and --uninstall leaves
the student's home as it was before. FIGURE lines give each step's time.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fileserver import Files, serving  # noqa: E402
from pdbridge.config import PROJECT_ROOT  # noqa: E402
from rootfs import USER, Root  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("debootstrap") or not shutil.which("patchelf"),
                                reason="needs root, debootstrap and patchelf (make test-install installs them)")

SRC = f"/home/{USER}/pdbridge"
PREFIX = f"/home/{USER}/.local/share/pdbridge"
ARTIFACTS = Path(os.environ.get("PDBRIDGE_TEST_ARTIFACTS", PROJECT_ROOT / ".cache" / "test-install"))
TEST_TOOLS = "xvfb imagemagick"
"""Only for the test's own GUI check: the virtual display and the screenshot."""


def figure(what: str, seconds: float) -> None:
    print(f"FIGURE {what}: {seconds:.1f} s", flush=True)


def timed(root: Root, what: str, command: str, user: str = USER, **kw: object) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    proc = root.run(command, user=user, **kw)  # type: ignore[arg-type]
    figure(what, time.monotonic() - t0)
    return proc


def home_tree(root: Root) -> dict[str, str]:
    """Every file and folder in the student's home with its size (folders: 'dir')."""
    home = root.path / "home" / USER
    tree = {}
    for path in sorted(home.rglob("*")):
        rel = str(path.relative_to(home))
        tree[rel] = "dir" if path.is_dir() and not path.is_symlink() else str(path.lstat().st_size)
    return tree


def _host_python_310() -> Path:
    """This machine's Python 3.10 installation (its prefix), found the way the installer finds one."""
    sys.path.insert(0, str(PROJECT_ROOT / "install"))
    import build_env

    found = build_env.find_python("3.10")
    if found is None:
        pytest.skip("no Python 3.10 on this machine to give the Debian 12 root (it has none)")
    return Path(os.path.realpath(found.path)).parent.parent


@pytest.fixture(scope="module")
def root() -> Iterator[Root]:
    t0 = time.monotonic()
    r = Root(Path(os.environ.get("PDBRIDGE_TEST_ROOTS", "/var/tmp/pdbridge-test-install")) / "root")
    figure("fresh Debian 12 root (unpacked, mounted)", time.monotonic() - t0)
    r.add_python_310(_host_python_310())
    files = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    dest = r.path / SRC.lstrip("/")
    for name in filter(None, files.decode().split("\0")):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        if (PROJECT_ROOT / name).is_file():
            shutil.copy2(PROJECT_ROOT / name, dest / name)
    r.run(f"chown -R {USER}:{USER} {SRC}", user="root")
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def before(root: Root) -> dict[str, str]:
    """The student's home before anything is installed (the clone is there)."""
    return home_tree(root)


def test_a_student_without_pd_is_told_what_to_ask_for(root: Root, before: dict[str, str]) -> None:
    proc = timed(root, "first install as the student, no Pd (builds every environment)",
                 f"{SRC}/install/install.sh", check=False)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert re.search(r"FAIL Pd: puredata-core puredata-gui puredata-extra missing .*sudo install/install.sh --system",
                     out), out
    for env, how in (("core", "python3.11 on PATH"), ("torch", "python3.11 on PATH"), ("tf", "python3.10 on PATH")):
        assert re.search(rf"environment {env}: Python 3\.1\d at \S+ \({re.escape(how)}\); cpu build \(", out), out
    doctor = root.run("pdbridge doctor", check=False).stdout
    assert "FAIL Pure Data not found" in doctor
    assert "FAIL Pd's GUI: no Pd" in doctor
    assert "FAIL Pd's extra objects (bob~, bonk~, sigmund~, ...) not found: sudo apt install puredata-extra" in doctor
    assert "ok   environment tf: Python 3.10" in doctor


def test_the_admin_adds_the_system_packages(root: Root) -> None:
    proc = timed(root, "install.sh --system as root (apt: Pd, GUI, extras)",
                 f"{SRC}/install/install.sh --system", user="root")
    assert "ok   installed puredata-core puredata-gui puredata-extra python3-venv" in proc.stdout
    root.run(f"apt-get install -y -qq --no-install-recommends {TEST_TOOLS}", user="root")


def test_the_second_run_finishes_with_doctor_all_ok(root: Root) -> None:
    proc = timed(root, "install.sh after the admin (envs up to date, doctor)", f"{SRC}/install/install.sh")
    out = proc.stdout
    assert "FAIL" not in out, out
    doctor = out.split("$ pdbridge doctor", 1)[1]
    for piece in ("Pd 0.53", "Pd's GUI at /usr/lib/puredata/tcl/pd-gui.tcl", "Pd's extra objects in",
                  f"Pd finds the pdbridge objects in {PREFIX}/pd/pdbridge", "hub starts with Pd's GUI",
                  "pdbridge command:", "environment core", "environment tf", "environment torch",
                  "worker gansynth: imports", "worker rave: imports", "worker samplernn: imports"):
        assert re.search(rf"^ok   {re.escape(piece)}", doctor, re.M), (piece, doctor)


def test_a_third_run_changes_nothing_and_is_fast(root: Root) -> None:
    tree = home_tree(root)
    mtimes = {p: p.stat().st_mtime for p in (root.path / "home" / USER / ".local").rglob("*") if p.is_file()}
    t0 = time.monotonic()
    out = root.run(f"{SRC}/install/install.sh --no-doctor").stdout
    seconds = time.monotonic() - t0
    figure("install.sh again, nothing to do (without doctor)", seconds)
    assert "code in" in out and "up to date" in out and "written" not in out and "now has" not in out, out
    assert home_tree(root) == tree
    assert {p: p.stat().st_mtime for p in mtimes} == mtimes  # not even rewritten
    assert seconds < 30


def test_a_demo_patch_renders_sound_headless(root: Root) -> None:
    timed(root, "pdbridge demo (every model through headless Pd)", "pdbridge demo --out /tmp/demo", timeout=1200)
    check = root.run(f"{PREFIX}/envs/core/bin/python -c \"import glob, numpy, soundfile; "
                     "[print(f, float(numpy.abs(soundfile.read(f)[0]).max())) for f in sorted(glob.glob('/tmp/demo/*.wav'))]\"")
    peaks = {Path(line.split()[0]).stem: float(line.split()[1]) for line in check.stdout.splitlines()}
    assert set(peaks) >= {"diagnostics", "gansynth", "rave", "samplernn"}, check.stdout
    assert all(peak > 0.001 for peak in peaks.values()), peaks


PATCH = """#N canvas 40 40 520 300 12;
#X text 20 12 pdbridge from Pd's own search path (no -path flag);
#X obj 20 60 r bridge-in;
#X obj 20 100 pdbridge.diagnostics;
#X obj 20 150 print RESULT;
#X obj 220 150 print BRIDGE;
#X obj 220 190 route connected;
#X obj 220 220 sel 1;
#X msg 220 250 ping gui;
#X connect 1 0 2 0;
#X connect 2 0 3 0;
#X connect 2 1 4 0;
#X connect 2 1 5 0;
#X connect 5 0 6 0;
#X connect 6 0 7 0;
#X connect 7 0 2 0;
"""


TICKET = "~/.local/state/pdbridge/hub-41750.txt"
HUBS = ("echo hubs: $(for d in /proc/[0-9]*; do [ \"$(stat -c %U $d 2>/dev/null)\" = $USER ] && "
        "tr '\\0' ' ' < $d/cmdline 2>/dev/null && echo; done | grep -c '^[^ ]*python[^ ]* -m pdbridge serve')")
"""How many hubs the student runs (the root has no procps: owners and command lines from /proc)."""


def test_pd_gui_finds_the_objects_and_starts_the_hub(root: Root) -> None:
    (root.path / "tmp" / "first_sound.pd").write_text(PATCH)
    script = (
        "Xvfb :57 -screen 0 1024x600x24 >/dev/null 2>&1 & xv=$!; sleep 1; "
        "t0=$(date +%s.%N); DISPLAY=:57 pd -stderr -nrt -nosound -open /tmp/first_sound.pd >/tmp/pd.log 2>&1 & pd=$!; "
        "for i in $(seq 300); do grep -q 'RESULT: pong gui' /tmp/pd.log && break; sleep 0.1; done; "
        "echo seconds $(echo \"$(date +%s.%N) - $t0\" | bc -l 2>/dev/null || python3 -c \"print($(date +%s.%N)-$t0)\"); "
        "sleep 1; DISPLAY=:57 import -window root /tmp/gui.png; "
        f"{HUBS}; grep -q 'state up' {TICKET} && echo ticket-up; "
        f"kill $pd; wait $pd; sleep 3; {HUBS}; grep -q 'state down' {TICKET} && echo ticket-down; "
        "kill $xv; cat /tmp/pd.log")
    out = root.run(script, timeout=120).stdout
    assert "RESULT: pong gui" in out and "BRIDGE: connected 1" in out, out
    assert "hubs: 1\nticket-up" in out and "hubs: 0\nticket-down" in out, out  # with Pd's GUI, and gone after
    assert "couldn't create" not in out and "error:" not in out, out
    seconds = float(re.search(r"seconds ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    figure("Pd GUI start -> hub started by the plugin -> first reply", seconds)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(root.path / "tmp" / "gui.png", ARTIFACTS / "pd-gui-first-sound.png")
    colours = subprocess.run(["identify", "-format", "%k", str(ARTIFACTS / "pd-gui-first-sound.png")],
                             capture_output=True, text=True)
    if colours.returncode == 0:
        assert int(colours.stdout) > 2  # windows were drawn, not a blank screen


@pytest.fixture
def server() -> Iterator[Files]:
    with serving() as s:
        yield s


def test_models_fetch_resumes_and_refuses_a_wrong_checksum(root: Root, server: Files) -> None:
    payload = os.urandom(2_000_000)
    server.files["/tone.wav"] = payload
    server.cut_after["/tone.wav"] = 700_000
    sha = hashlib.sha256(payload).hexdigest()
    (root.path / "tmp" / "cat.toml").write_text(
        f'[tone]\nmodel = "diagnostics"\nabout = "t"\nurl = "{server.url("/tone.wav")}"\nsha256 = "{sha}"\n'
        f'[bad]\nmodel = "diagnostics"\nabout = "t"\nurl = "{server.url("/tone.wav")}"\nsha256 = "{"0" * 64}"\n')
    env = {"PDBRIDGE_CATALOGUE": "/tmp/cat.toml"}
    first = root.run("pdbridge models fetch tone", env=env, check=False)
    assert first.returncode == 1 and "again to resume" in first.stderr, first.stderr
    second = root.run("pdbridge models fetch tone", env=env)
    assert "resuming at 700000 bytes" in second.stderr and server.ranges[-1] == "bytes=700000-"
    assert (root.path / PREFIX.lstrip("/") / "models" / "tone.wav").read_bytes() == payload
    bad = root.run("pdbridge models fetch bad", env=env, check=False)
    assert bad.returncode == 1 and "refused" in bad.stderr
    assert "tone               diagnostics installed" in root.run("pdbridge models list", env=env).stdout
    root.run("pdbridge models remove tone", env=env)


def test_doctor_names_each_piece_taken_away(root: Root) -> None:
    root.run(f"mv {PREFIX}/envs/tf /tmp/tf-away && mv ~/.pdsettings /tmp/pdsettings-away")
    try:
        doctor = root.run("pdbridge doctor", check=False)
        assert doctor.returncode == 1
        out = doctor.stdout
        assert "FAIL environment tf: not installed: run install/install.sh again" in out
        assert "FAIL worker gansynth: needs the tf environment: run install/install.sh again" in out
        assert "FAIL Pd's search path" in out and "has no pdbridge folder" in out
        assert "FAIL no pdbridge GUI plugin on Pd's search path" in out
        assert "ok   environment torch" in out
    finally:
        root.run(f"mv /tmp/tf-away {PREFIX}/envs/tf && mv /tmp/pdsettings-away ~/.pdsettings")


def test_uninstall_leaves_the_home_as_it_was(root: Root, before: dict[str, str]) -> None:
    out = timed(root, "install.sh --uninstall", f"{SRC}/install/install.sh --uninstall").stdout
    assert "removed pdbridge" in out
    after = home_tree(root)
    # Pd's GUI keeps its own settings and Tk's font cache, as on any use of Pd: not the installer's
    pd_own = (".config", ".config/Pd", ".cache", ".cache/fontconfig")
    after = {k: v for k, v in after.items() if not k.startswith(tuple(f"{p}/" for p in pd_own)) and k not in pd_own}
    left, gone = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    assert not left and not gone, f"left behind: {left}; gone: {gone}"
