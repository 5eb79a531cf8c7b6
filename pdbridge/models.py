"""``pdbridge models``: fetch official checkpoints into the models folder, where objects load them by
short name (``load all_instruments``, see :mod:`workers.runtime.checkpoints`).

Lab networks drop long downloads and lab disks fill up, so a fetch is built to be repeated: bytes
go to a ``.part`` file that the next fetch continues with an HTTP range request; nothing is put in
place until every file of a checkpoint has arrived and matched its checksum (from the catalogue,
from the storage listing, or recorded at the first download), and a file that does not match is
deleted and refused. What is installed is recorded in ``.pdbridge-models.json`` in the folder.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Optional, TextIO

from pdwire.folders import models_folder

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

CATALOGUE = Path(__file__).with_name("models.toml")
CATALOGUE_ENV = "PDBRIDGE_CATALOGUE"
MANIFEST = ".pdbridge-models.json"
PARTIAL = ".partial"
CHUNK = 1 << 16
TIMEOUT_S = 60.0


class FetchError(Exception):
    """A fetch that did not install anything, worded for the user (what happened, what to do)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a checkpoint: where it comes from, where it goes in the checkpoint, its checks."""
    url: str
    path: str
    size: Optional[int] = None
    sha256: Optional[str] = None
    md5: Optional[str] = None


@dataclass(frozen=True)
class Entry:
    """A catalogue entry: a short name and how to get its checkpoint."""
    name: str
    model: str
    about: str
    url: Optional[str] = None
    listing: Optional[str] = None
    unpack: Optional[str] = None
    suffix: Optional[str] = None
    sha256: Optional[str] = None
    size: Optional[int] = None

    @property
    def installed_name(self) -> str:
        """A folder for archives and listings, else the file with its suffix (``vintage.ts``)."""
        if self.listing or self.unpack:
            return self.name
        return self.name + (self.suffix or PurePosixPath(urllib.parse.urlparse(self.url or "").path).suffix)


def load_catalogue(path: Optional[Path] = None) -> dict[str, Entry]:
    """The catalogue (``$PDBRIDGE_CATALOGUE`` or pdbridge/models.toml) by short name."""
    path = path or Path(os.environ.get(CATALOGUE_ENV) or CATALOGUE)
    with open(path, "rb") as f:
        data = tomllib.load(f)
    entries = {}
    for name, spec in data.items():
        if bool(spec.get("url")) == bool(spec.get("listing")):
            raise ValueError(f"{path}: [{name}] needs exactly one of url or listing")
        if spec.get("unpack") not in (None, "zip", "tar"):
            raise ValueError(f"{path}: [{name}] unpack must be zip or tar")
        entries[name] = Entry(name, spec["model"], spec.get("about", ""), spec.get("url"), spec.get("listing"),
                              spec.get("unpack"), spec.get("suffix"), spec.get("sha256"), spec.get("size"))
    return entries


@dataclass
class Manifest:
    """``.pdbridge-models.json``: what fetch installed, with the SHA-256 of every file it downloaded."""
    folder: Path
    entries: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> "Manifest":
        try:
            return cls(folder, json.loads((folder / MANIFEST).read_text()))
        except (OSError, ValueError):
            return cls(folder)

    def write(self) -> None:
        """Save it; with nothing left installed, the file goes (an empty folder is no one's)."""
        if not self.entries:
            (self.folder / MANIFEST).unlink(missing_ok=True)
            return
        tmp = self.folder / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.folder / MANIFEST)

    def recorded_sha256(self, name: str, url: str) -> Optional[str]:
        """The SHA-256 a file from ``url`` had when ``name`` was first fetched (trust on first use)."""
        return self.entries.get(name, {}).get("files", {}).get(url)


def remote_files(entry: Entry, opener: Callable[[str], bytes]) -> list[RemoteFile]:
    """The files an entry is made of: its one URL, or every object of its storage listing."""
    if entry.url:
        return [RemoteFile(entry.url, entry.installed_name, entry.size, entry.sha256)]
    assert entry.listing is not None
    files: list[RemoteFile] = []
    prefix = urllib.parse.parse_qs(urllib.parse.urlparse(entry.listing).query).get("prefix", [""])[0]
    page: Optional[str] = None
    while True:
        url = entry.listing + (f"&pageToken={urllib.parse.quote(page)}" if page else "")
        data = json.loads(opener(url))
        for item in data.get("items", []):
            rel = item["name"][len(prefix):] if item["name"].startswith(prefix) else PurePosixPath(item["name"]).name
            if not rel or rel.endswith("/"):
                continue  # a folder placeholder
            md5 = base64.b64decode(item["md5Hash"]).hex() if item.get("md5Hash") else None
            files.append(RemoteFile(item["mediaLink"], rel, int(item["size"]) if "size" in item else None, md5=md5))
        page = data.get("nextPageToken")
        if not page:
            break
    if not files:
        raise FetchError(f"{entry.name}: the listing {entry.listing} has no files")
    return files


def _read_url(url: str) -> bytes:
    with urllib.request.urlopen(_request(url), timeout=TIMEOUT_S) as resp:
        return resp.read()


def _request(url: str, start: int = 0) -> urllib.request.Request:
    headers = {"User-Agent": "pdbridge-models"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.Request(url, headers=headers)


def download(url: str, part: Path, out: TextIO, label: str) -> None:
    """Bring ``url`` into ``part``, continuing what an earlier, interrupted call left there.

    A server that ignores the range (200 instead of 206) sends the whole file again, which then
    replaces the partial one. A connection that breaks leaves what arrived, for the next call.
    """
    have = part.stat().st_size if part.exists() else 0
    try:
        resp = urllib.request.urlopen(_request(url, have), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the range starts at the end: it had all arrived
            return
        raise FetchError(f"{label}: {url} answered {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{label}: cannot reach {url} ({getattr(exc, 'reason', exc)}); is this machine "
                         "online? Run the same command again to resume.") from exc
    with resp:
        resumed = have > 0 and resp.status == 206
        if not resumed:
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        if resumed:
            print(f"{label}: resuming at {have} bytes", file=out, flush=True)
        got = have
        shown = time.monotonic()
        try:
            with open(part, "ab" if resumed else "wb") as f:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    got += len(chunk)
                    if time.monotonic() - shown > 2:
                        shown = time.monotonic()
                        print(f"{label}: {_amount(got, total)}", file=out, flush=True)
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"{label}: the download stopped at {_amount(got, total)} ({exc}); run the same "
                             "command again to resume") from exc
    if total is not None and got != total:
        raise FetchError(f"{label}: the download stopped at {_amount(got, total)}; run the same command "
                         "again to resume")


def _amount(got: int, total: Optional[int]) -> str:
    return f"{got / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{got / 1e6:.1f} MB"


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def verify(file: RemoteFile, part: Path, recorded: Optional[str], label: str) -> str:
    """The file's SHA-256 once it matches every checksum known for it; a wrong file is deleted."""
    sha = _digest(part, "sha256")
    checks = [("SHA-256", sha, file.sha256, "the catalogue"), ("SHA-256", sha, recorded, "the first download")]
    if file.md5:
        checks.append(("MD5", _digest(part, "md5"), file.md5, "the storage listing"))
    for kind, actual, expected, source in checks:
        if expected and actual.lower() != expected.lower():
            part.unlink()
            raise FetchError(f"{label}: refused: its {kind} is {actual}, {source} says {expected}. The download "
                             "was deleted; if it happens again, the file on the server changed.")
    if file.size is not None and part.stat().st_size != file.size:
        part.unlink()
        raise FetchError(f"{label}: refused: {part.stat().st_size} bytes, expected {file.size}; deleted")
    return sha


def _unpack(archive: Path, kind: str, into: Path, label: str) -> Path:
    """Unpack without letting any member leave ``into``; the checkpoint folder it holds. An archive
    that is broken or reaches outside is deleted: fetching it again will not make it better."""
    into.mkdir(parents=True)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    p = PurePosixPath(member)
                    if p.is_absolute() or ".." in p.parts:
                        raise FetchError(f"refused: the archive has a member outside it ({member})")
                z.extractall(into)
        else:
            with tarfile.open(archive) as t:
                t.extractall(into, filter="data")
    except (FetchError, zipfile.BadZipFile, tarfile.TarError) as exc:
        archive.unlink()
        shutil.rmtree(into)
        raise FetchError(f"{label}: {exc}" if isinstance(exc, FetchError) else
                         f"{label}: the download is not a {kind} archive ({exc}); deleted") from exc
    top = [p for p in into.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    return top[0] if len(top) == 1 and top[0].is_dir() else into


def fetch(entry: Entry, folder: Optional[Path] = None, out: TextIO = sys.stderr, force: bool = False,
          opener: Callable[[str], bytes] = _read_url) -> Path:
    """Install ``entry`` into the models folder and return where; repeat after a failure to resume."""
    folder = folder or models_folder()
    target = folder / entry.installed_name
    if target.exists() and not force:
        print(f"{entry.name}: already installed at {target}", file=out)
        return target
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.read(folder)
    work = folder / PARTIAL / entry.name
    work.mkdir(parents=True, exist_ok=True)
    try:
        files, hashes = _download_all(entry, work, manifest, out, opener)
        source = _assemble(entry, files, work)
    except FetchError:
        if not any(work.glob("*.part")):  # nothing to resume: leave no empty folders behind
            shutil.rmtree(work)
            _remove_if_empty(folder / PARTIAL)
        raise
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    source.rename(target)
    shutil.rmtree(work)
    _remove_if_empty(folder / PARTIAL)
    manifest.entries[entry.name] = {"model": entry.model, "path": entry.installed_name, "files": hashes,
                                    "fetched": time.strftime("%Y-%m-%d %H:%M:%S")}
    manifest.write()
    print(f"{entry.name}: installed at {target} (load {entry.name} in [pdbridge.{entry.model}])", file=out)
    return target


def _download_all(entry: Entry, work: Path, manifest: Manifest, out: TextIO,
                  opener: Callable[[str], bytes]) -> tuple[list[RemoteFile], dict[str, str]]:
    """Every file of the entry downloaded (or resumed) and verified: the files and their SHA-256."""
    files = remote_files(entry, opener)
    hashes: dict[str, str] = {}
    for file in files:
        label = f"{entry.name}: {file.path}" if len(files) > 1 else entry.name
        part = _part(work, file.url)
        download(file.url, part, out, label)
        recorded = manifest.recorded_sha256(entry.name, file.url)
        hashes[file.url] = verify(file, part, recorded, label)
        if not (file.sha256 or file.md5 or recorded):
            print(f"{label}: no published checksum; its SHA-256 {hashes[file.url]} is recorded in "
                  f"{manifest.folder / MANIFEST} and later fetches must match it", file=out)
    return files, hashes


def _assemble(entry: Entry, files: list[RemoteFile], work: Path) -> Path:
    """The verified downloads as the checkpoint: the file itself, the unpacked archive, or a folder."""
    staged = work / "staged"
    shutil.rmtree(staged, ignore_errors=True)
    if entry.unpack:
        return _unpack(_part(work, files[0].url), entry.unpack, staged, entry.name)
    if not entry.listing:
        return _part(work, files[0].url)
    for file in files:
        if PurePosixPath(file.path).is_absolute() or ".." in PurePosixPath(file.path).parts:
            raise FetchError(f"{entry.name}: refused: the listing names a file outside it ({file.path})")
        dest = staged / file.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_part(work, file.url), dest)
    return staged


def _part(work: Path, url: str) -> Path:
    """Where a URL's bytes collect until they are verified (named by the URL, so a resume finds them)."""
    return work / (hashlib.sha256(url.encode()).hexdigest()[:16] + ".part")


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def remove(name: str, folder: Optional[Path] = None) -> Path:
    """Delete a fetched checkpoint (only what fetch installed; a student's own files are refused)."""
    folder = folder or models_folder()
    manifest = Manifest.read(folder)
    if name not in manifest.entries:
        raise FetchError(f"{name} was not fetched by pdbridge models (installed: "
                         f"{', '.join(sorted(manifest.entries)) or 'none'})")
    target = folder / manifest.entries[name]["path"]
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    del manifest.entries[name]
    manifest.write()
    return target


@dataclass(frozen=True)
class Listed:
    """One line of ``pdbridge models list``."""
    name: str
    model: str
    state: str
    about: str


def listing(catalogue: dict[str, Entry], folder: Optional[Path] = None) -> list[Listed]:
    """Every catalogue entry (installed or fetchable) and every other checkpoint in the folder."""
    folder = folder or models_folder()
    manifest = Manifest.read(folder)
    rows = []
    for entry in catalogue.values():
        there = (folder / entry.installed_name).exists()
        partial = any((folder / PARTIAL / entry.name).glob("*.part"))
        state = "installed" if there else "partial" if partial else "fetchable"
        rows.append(Listed(entry.name, entry.model, state, entry.about))
    known = {e.installed_name for e in catalogue.values()}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.name in known:
                continue
            model = next((e["model"] for e in manifest.entries.values() if e["path"] == path.name), "?")
            rows.append(Listed(path.name, model, "installed", "yours (not in the catalogue)"))
    return rows


def run(action: str, names: list[str], force: bool = False, out: TextIO = sys.stdout) -> int:
    """The ``pdbridge models`` command: list | fetch NAME... | remove NAME...; 1 when any failed."""
    catalogue = load_catalogue()
    folder = models_folder()
    if action == "list":
        print(f"models folder: {folder}", file=out)
        for row in listing(catalogue, folder):
            print(f"{row.name:18s} {row.model:11s} {row.state:10s} {row.about}", file=out)
        return 0
    if not names:
        print(f"pdbridge models {action}: which? (pdbridge models list shows the names)", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        try:
            if action == "remove":
                print(f"removed {remove(name, folder)}", file=out)
                continue
            if name not in catalogue:
                raise FetchError(f"{name} is not in the catalogue (pdbridge models list shows the names)")
            fetch(catalogue[name], folder, out=sys.stderr, force=force)
        except FetchError as exc:
            print(f"pdbridge models: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0
