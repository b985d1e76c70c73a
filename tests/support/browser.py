"""Browser-test plumbing: the built page served on its own origin, pointed at a test API, in
Debian's Chromium driven by Playwright (Playwright's own browser download does not work here).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from privchat.commands.tunnel_setup import rewrite_csp

from .server import REPO, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
DIST = REPO / "pages" / "dist"
ARTIFACTS = REPO / "test-artifacts"


def ensure_built() -> Path:
    if not (DIST / "chat" / "index.html").exists():
        subprocess.run(["npm", "run", "build"], cwd=REPO / "pages", check=True, capture_output=True)
    return DIST


def site_copy(folder: Path, api_origin: str) -> Path:
    """A copy of the built folder whose config.json and CSP name ``api_origin``, as the tunnel setup writes them."""
    target = folder / "site"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(ensure_built(), target)
    (target / "chat" / "config.json").write_text(json.dumps({"apiOrigin": api_origin}) + "\n")
    headers = target / "_headers"
    text, _changed = rewrite_csp(headers.read_text(), api_origin, keep_local=False)
    headers.write_text(text)
    return target


@dataclass
class SiteServer:
    """`privchat site` serving a folder with its _headers, as a separate origin from the API."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    config: Path | None = None  # `privchat --config` for the site: its server's origin joins the CSP's connect-src

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "SiteServer":
        log = (self.directory.parent / "site.log").open("ab")
        config = ["--config", str(self.config)] if self.config else []
        self.process = subprocess.Popen([sys.executable, "-m", "privchat", *config, "site", "--dir", str(self.directory),
                                         "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.origin + "/chat/", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("the site server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def site_port() -> int:
    return free_port()
