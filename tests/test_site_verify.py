"""`privchat site verify URL`: the deployed page compared file by file with the local build.

The "deployed site" is a copy of pages/dist behind Python's http.server on loopback; the local
build is another copy, so a rebuild elsewhere during the test changes neither.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from privchat.commands.site import SiteVerifyError, page_origin, verify_site

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "pages" / "dist"


def built() -> Path:
    if not (DIST / "chat" / "integrity.json").exists() or not (DIST / "chat" / "index.html").exists():
        subprocess.run(["npm", "run", "build"], cwd=REPO / "pages", check=True, capture_output=True)
    return DIST


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """(local build, served copy, page URL on loopback)."""
    local = tmp_path / "local"
    shutil.copytree(built(), local)
    served = tmp_path / "served"
    shutil.copytree(local, served)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield local, served, f"http://127.0.0.1:{server.server_address[1]}/chat/"
    finally:
        server.shutdown()
        server.server_close()


def checked_files(local: Path) -> set[str]:
    """What verify compares: every file the build pinned, and the ones it lists as verify-only."""
    pinned = json.loads((local / "chat" / "integrity.json").read_text())
    return set(pinned["files"]) | set(pinned.get("verify_only", {}))


def verify(url: str, local: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "privchat", "site", "verify", url, "--dir", str(local), *extra],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.slow  # seconds of subprocesses or real waits: not in the --fast loop
def test_a_deployed_page_that_is_the_build_verifies(sites: tuple[Path, Path, str]) -> None:
    local, _served, url = sites
    result = verify(url, local)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for path in ("/chat/", "/chat/app.js", "/chat/app.css", "/chat/sw.js", "/chat/config.json", "/chat/icon-512.png"):
        assert f"ok       {path}" in lines, result.stdout
    assert f"All {len(checked_files(local))} files match" in result.stdout
    as_json = json.loads(verify(url, local, "--json").stdout)
    assert as_json["ok"] is True and {f["status"] for f in as_json["files"]} == {"ok"}


@pytest.mark.slow  # seconds of subprocesses or real waits: not in the --fast loop
def test_a_changed_file_and_a_missing_one_are_reported(sites: tuple[Path, Path, str]) -> None:
    local, served, url = sites
    app = served / "chat" / "app.js"
    app.write_bytes(app.read_bytes() + b";fetch('/steal')")
    (served / "chat" / "icon.svg").unlink()
    result = verify(url, local)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "differs  /chat/app.js" in lines
    assert "missing  /chat/icon.svg  (HTTP 404)" in lines
    assert "ok       /chat/app.css" in lines and "ok       /chat/" in lines
    assert f"2 of {len(checked_files(local))} file(s) differ" in result.stdout
    report = json.loads(verify(url, local, "--json").stdout)
    assert report["ok"] is False
    by_path = {f["path"]: f for f in report["files"]}
    assert by_path["/chat/app.js"]["status"] == "differs"
    assert by_path["/chat/app.js"]["actual_sha256"] == base64.b64encode(hashlib.sha256(app.read_bytes()).digest()).decode()
    assert by_path["/chat/icon.svg"]["status"] == "missing" and by_path["/chat/icon.svg"]["http_status"] == 404
    assert sum(f["status"] == "ok" for f in report["files"]) == len(checked_files(local)) - 2


def test_verify_compares_the_hashes_the_service_worker_checks(sites: tuple[Path, Path, str]) -> None:
    """The pinned files' hashes are the ones built into sw.js, and a changed config.json is reported too."""
    local, served, url = sites
    sw = (local / "chat" / "sw.js").read_text(encoding="utf-8")
    manifest = json.loads((local / "chat" / "integrity.json").read_text(encoding="utf-8"))
    for path, digest in manifest["files"].items():
        assert json.dumps(path) + ":" + json.dumps(digest) in sw, path
    (served / "chat" / "config.json").write_text('{"apiOrigin": "https://attacker.example"}\n')
    checks = {c.path: c.status for c in verify_site(url, local)}
    assert checks["/chat/config.json"] == "differs"
    assert [p for p, s in checks.items() if s != "ok"] == ["/chat/config.json"]


@pytest.mark.slow  # seconds of subprocesses or real waits: not in the --fast loop
def test_verify_refuses_what_it_cannot_check(tmp_path: Path) -> None:
    for url in ("http://chat.example.com/chat/", "ftp://127.0.0.1/chat/", "https://chat.example.com/other/",
                "https://user:pw@chat.example.com/chat/"):
        with pytest.raises(SiteVerifyError):
            page_origin(url)
    assert page_origin("https://chat.example.com/chat/") == "https://chat.example.com"
    assert page_origin("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    no_build = verify("http://127.0.0.1:9/chat/", tmp_path)
    assert no_build.returncode == 1 and "integrity.json is missing" in no_build.stderr
    unreachable = verify("http://127.0.0.1:9/chat/", built())
    assert unreachable.returncode == 1 and "cannot fetch the page" in unreachable.stderr
