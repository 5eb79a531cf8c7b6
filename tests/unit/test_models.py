"""pdbridge models: fetch from a loopback HTTP server serving fixture files - resume after a cut,
refuse a wrong checksum, unpack archives safely, storage listings with their MD5s, list."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterator, Optional

import pytest

from pdbridge import models
from pdbridge.config import PROJECT_ROOT, project_env
from fileserver import Files, serving


@pytest.fixture
def server() -> Iterator[Files]:
    with serving() as s:
        yield s


def entry(url: str, **kw: object) -> models.Entry:
    return models.Entry(name=str(kw.pop("name", "tone")), model=str(kw.pop("model", "rave")), about="", url=url,
                        **kw)  # type: ignore[arg-type]


PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_an_interrupted_download_resumes_where_it_stopped(server: Files, tmp_path: Path) -> None:
    server.files["/tone.ts"] = PAYLOAD
    server.cut_after["/tone.ts"] = 120_000
    e = entry(server.url("/tone.ts"), sha256=SHA)
    with pytest.raises(models.FetchError, match="stopped at 0.1 of 0.3 MB.*again to resume"):
        models.fetch(e, tmp_path, out=io.StringIO())
    assert models.listing({"tone": e}, tmp_path)[0].state == "partial"
    out = io.StringIO()
    assert models.fetch(e, tmp_path, out=out) == tmp_path / "tone.ts"
    assert server.ranges == [None, "bytes=120000-"]  # the second request asked for the rest only
    assert "resuming at 120000 bytes" in out.getvalue()
    assert (tmp_path / "tone.ts").read_bytes() == PAYLOAD
    assert not (tmp_path / models.PARTIAL).exists()
    manifest = json.loads((tmp_path / models.MANIFEST).read_text())
    assert manifest["tone"]["files"] == {server.url("/tone.ts"): SHA}


def test_a_wrong_checksum_is_refused_and_nothing_is_installed(server: Files, tmp_path: Path) -> None:
    server.files["/tone.ts"] = PAYLOAD
    with pytest.raises(models.FetchError, match=f"refused: its SHA-256 is {SHA}, the catalogue says 0+"):
        models.fetch(entry(server.url("/tone.ts"), sha256="0" * 64), tmp_path, out=io.StringIO())
    assert not (tmp_path / "tone.ts").exists() and not (tmp_path / models.PARTIAL).exists()
    assert not (tmp_path / models.MANIFEST).exists()


def test_without_a_published_checksum_the_first_download_is_recorded(server: Files, tmp_path: Path) -> None:
    server.files["/tone.ts"] = PAYLOAD
    out = io.StringIO()
    models.fetch(entry(server.url("/tone.ts")), tmp_path, out=out)
    assert f"no published checksum; its SHA-256 {SHA} is recorded" in out.getvalue()
    server.files["/tone.ts"] = PAYLOAD[::-1]  # the server now sends something else
    with pytest.raises(models.FetchError, match="the first download says"):
        models.fetch(entry(server.url("/tone.ts")), tmp_path, out=io.StringIO(), force=True)
    assert (tmp_path / "tone.ts").read_bytes() == PAYLOAD  # the installed one is untouched


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_an_archive_with_one_top_folder_becomes_the_checkpoint_folder(server: Files, tmp_path: Path) -> None:
    server.files["/all_instruments.zip"] = _zip({"all_instruments/experiment.json": b"{}",
                                                 "all_instruments/stage_00012/model.ckpt.index": b"x"})
    e = entry(server.url("/all_instruments.zip"), name="all_instruments", model="gansynth", unpack="zip")
    assert models.fetch(e, tmp_path, out=io.StringIO()) == tmp_path / "all_instruments"
    assert (tmp_path / "all_instruments" / "stage_00012" / "model.ckpt.index").read_bytes() == b"x"
    out = io.StringIO()
    models.fetch(e, tmp_path, out=out)  # a second fetch is a no-op
    assert "already installed" in out.getvalue() and len(server.ranges) == 1


def test_an_archive_reaching_outside_is_refused(server: Files, tmp_path: Path) -> None:
    server.files["/evil.zip"] = _zip({"../../escaped.txt": b"x"})
    with pytest.raises(models.FetchError, match="member outside it"):
        models.fetch(entry(server.url("/evil.zip"), name="evil", unpack="zip"), tmp_path / "m", out=io.StringIO())
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "m" / "evil").exists()


def _listing(server: Files, prefix: str, files: dict[str, bytes], md5s: Optional[dict[str, bytes]] = None) -> str:
    items = []
    for name, data in files.items():
        server.files[f"/o/{name}"] = data
        md5 = (md5s or {}).get(name, data)
        items.append({"name": prefix + name, "size": str(len(data)), "mediaLink": server.url(f"/o/{name}"),
                      "md5Hash": base64.b64encode(hashlib.md5(md5).digest()).decode()})
    server.files["/list?prefix=" + prefix] = json.dumps({"items": [{"name": prefix}] + items}).encode()
    return server.url("/list?prefix=" + prefix)


def test_a_storage_listing_fills_a_folder_checked_by_md5(server: Files, tmp_path: Path) -> None:
    files = {"ckpt-1.index": b"i" * 10, "ckpt-1.data-00000-of-00001": b"d" * 5000, "operative_config-0.gin": b"g"}
    url = _listing(server, "models/solo_violin_ckpt/", files)
    e = models.Entry("violin", "ddsp", "", listing=url)
    models.fetch(e, tmp_path, out=io.StringIO())
    assert {p.name: p.read_bytes() for p in (tmp_path / "violin").iterdir()} == files


def test_a_listing_file_with_the_wrong_md5_is_refused(server: Files, tmp_path: Path) -> None:
    url = _listing(server, "p/", {"a.gin": b"real"}, md5s={"a.gin": b"other"})
    with pytest.raises(models.FetchError, match="MD5 .* the storage listing says"):
        models.fetch(models.Entry("violin", "ddsp", "", listing=url), tmp_path, out=io.StringIO())
    assert not (tmp_path / "violin").exists()


def test_list_shows_installed_fetchable_and_the_users_own(tmp_path: Path) -> None:
    catalogue = {"vintage": entry("https://example.invalid/get_model/vintage", name="vintage", suffix=".ts"),
                 "all_instruments": entry("https://example.invalid/a.zip", name="all_instruments", unpack="zip")}
    (tmp_path / "vintage.ts").write_bytes(b"x")
    (tmp_path / "my_model").mkdir()
    rows = {r.name: r.state for r in models.listing(catalogue, tmp_path)}
    assert rows == {"vintage": "installed", "all_instruments": "fetchable", "my_model": "installed"}


def test_the_shipped_catalogue_reads_and_names_every_model_family() -> None:
    catalogue = models.load_catalogue(models.CATALOGUE)
    assert {"gansynth", "melody_rnn", "ddsp", "rave"} <= {e.model for e in catalogue.values()}
    assert {"all_instruments", "acoustic_only"} <= set(catalogue)
    assert catalogue["vintage"].installed_name == "vintage.ts"


def test_the_command_fetches_lists_and_removes(server: Files, tmp_path: Path) -> None:
    server.files["/tone.wav"] = PAYLOAD
    (tmp_path / "cat.toml").write_text(f'[tone]\nmodel = "diagnostics"\nabout = "a test tone"\n'
                                       f'url = "{server.url("/tone.wav")}"\nsha256 = "{SHA}"\n')
    env = project_env(PDBRIDGE_CATALOGUE=str(tmp_path / "cat.toml"), PDBRIDGE_MODELS=str(tmp_path / "m"))

    def pdbridge(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pdbridge", "models", *args], capture_output=True, text=True,
                              env=env, cwd=PROJECT_ROOT, timeout=60)

    assert "tone               diagnostics fetchable" in pdbridge("list").stdout
    fetched = pdbridge("fetch", "tone")
    assert fetched.returncode == 0 and "load tone in [pdbridge.diagnostics]" in fetched.stderr
    assert "installed" in pdbridge("list").stdout
    missing = pdbridge("fetch", "nosuch")
    assert missing.returncode == 1 and "nosuch is not in the catalogue" in missing.stderr
    assert pdbridge("remove", "tone").returncode == 0 and not (tmp_path / "m" / "tone.wav").exists()
