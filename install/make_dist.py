"""``make dist``: the deken packages, so Pd users find pdbridge in Help -> Find externals.

- ``pdbridge[vX.Y.Z].dek``: the abstractions, help patches and examples, architecture-independent
  (no ``(os-cpu-floatsize)`` part: nothing in it is compiled), one top folder ``pdbridge/`` as deken
  requires, with the GUI plugin and a README.txt that tells the user how to install the Python side
  (objects without it find no hub, and the plugin says so in the Pd window);
- ``pdbridge[vX.Y.Z](Sources).dek``: the whole source tree at HEAD (deken's Sources pseudo-arch);
- beside each, ``.sha256`` (deken uploads carry it) and, for the package, ``.dek.txt``: one line per
  object with the description from its help patch's title, which deken's search shows.

The archives are reproducible (fixed timestamps, sorted members), so the same commit gives the same
checksums. Usage: python install/make_dist.py [--out dist]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import re
import subprocess
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "pd_patches"
LIBRARY = "pdbridge"
EPOCH = (2020, 1, 1, 0, 0, 0)
README = """pdbridge {version} - generative audio models as Pure Data objects

These are the abstractions ([pdbridge.gansynth], [pdbridge.samplernn], [pdbridge.rave], ...),
their help patches (right-click -> Help) and examples. Each object sends its messages to a small
hub program that runs the models in Python; this package holds only the Pd side, so you also need
the Python side once:

    git clone <the pdbridge repository>   (or unpack the pdbridge[v{version}](Sources).dek beside this)
    cd pdbridge
    install/install.sh

install.sh installs Pd's GUI and extras if they are missing, builds the model environments, puts
these objects on Pd's search path, starts the hub whenever Pd's GUI starts (the pdbridge-plugin.tcl
in this folder does that once the Python side is there; until then it prints how to install it in
the Pd window), and finishes with `pdbridge doctor`. See docs/quickstart.md in the sources.
"""


def version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        raise SystemExit("make_dist: no version in pyproject.toml")
    return match.group(1)


def package_members(ver: str) -> dict[str, bytes]:
    """Path inside the .dek (under pdbridge/) -> contents."""
    members: dict[str, bytes] = {}
    for path in sorted(PATCHES.rglob("*.pd")):
        members[f"{LIBRARY}/{path.relative_to(PATCHES)}"] = path.read_bytes()
    plugin = (ROOT / "install" / "pdbridge-plugin.tcl").read_text().replace("@LAUNCHER@", "")
    members[f"{LIBRARY}/pdbridge-plugin.tcl"] = plugin.encode()
    members[f"{LIBRARY}/README.txt"] = README.format(version=ver).encode()
    return members


def objects_file() -> str:
    """deken's object list: ``name<TAB>description`` from each help patch's title line."""
    lines = []
    for help_patch in sorted(PATCHES.glob("pdbridge.*-help.pd")):
        name = help_patch.name[: -len("-help.pd")]
        title = re.search(r"^#X text \d+ \d+ \[[^\]]+\] - (.*?)(?:, f \d+)?;$", help_patch.read_text(), re.M)
        description = title.group(1).replace(" \\,", ",") if title else ""
        lines.append(f"{name}\t{description}")
    return "\n".join(lines) + "\n"


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, EPOCH)
            info.external_attr = 0o644 << 16
            z.writestr(info, members[name])
    path.write_bytes(buf.getvalue())


def source_members() -> dict[str, bytes]:
    """Every file committed at HEAD, under pdbridge/ (git archive's view, without the worktree's noise)."""
    listing = subprocess.run(["git", "ls-tree", "-r", "-z", "--name-only", "HEAD"], cwd=ROOT, check=True,
                             capture_output=True).stdout.decode().split("\0")
    return {f"{LIBRARY}/{name}": subprocess.run(["git", "show", f"HEAD:{name}"], cwd=ROOT, check=True,
                                                capture_output=True).stdout
            for name in listing if name}


def checksum(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")


def build(out: Path) -> list[Path]:
    """Write the package, its object list, the Sources package and their checksums into ``out``."""
    ver = version()
    out.mkdir(parents=True, exist_ok=True)
    dek = out / f"{LIBRARY}[v{ver}].dek"
    write_zip(dek, package_members(ver))
    (out / f"{dek.name}.txt").write_text(objects_file())
    sources = out / f"{LIBRARY}[v{ver}](Sources).dek"
    write_zip(sources, source_members())
    for path in (dek, sources):
        checksum(path)
    return [dek, out / f"{dek.name}.txt", sources]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    for path in build(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
