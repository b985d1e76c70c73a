"""In Chromium: a server the page's own CSP blocks is not a stopped server.

The server listens on a port the built page's CSP does not name (as with ``server.port: 9765`` and
the default pages/_headers). Served as built, the page cannot reach it: it says which origin its
policy lacks and how to fix it, not "start it with privchat serve". Served by ``privchat site`` with
the server's config, the CSP names the server and the page reaches it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import expect

from tests.browser.conftest import wait_state
from tests.support.browser import SiteServer, ensure_built, site_port
from tests.support.server import LiveServer, write_config

pytestmark = pytest.mark.browser


def _built_copy(folder: Path, api_origin: str) -> Path:
    """The built page as it is (its CSP names only http://127.0.0.1:8765), pointed at ``api_origin``."""
    target = folder / "site"
    shutil.copytree(ensure_built(), target)
    (target / "chat" / "config.json").write_text(json.dumps({"apiOrigin": api_origin}) + "\n")
    return target


def test_a_csp_blocked_server_is_named_and_privchat_site_allows_the_configured_one(tmp_path: Path, built_pages: Path,
                                                                                   open_page) -> None:
    site_origin_port = site_port()
    site_origin = f"http://127.0.0.1:{site_origin_port}"
    overrides = {"server": {"allowed_origins": [site_origin]}, "site": {"url": site_origin}, "model": {"enabled": False}}
    server = LiveServer(tmp_path / "server", write_config(tmp_path / "server", overrides)).start(wait_for=None)
    other_config = tmp_path / "other.yaml"  # a config naming the default server port: its site adds 8765 only
    other_config.write_text(yaml.safe_dump({"server": {"port": 8765}}))
    directory = _built_copy(tmp_path, server.url)
    site = SiteServer(directory, site_origin_port, config=other_config).start()
    try:
        csp = httpx.get(site.origin + "/chat/").headers["Content-Security-Policy"]
        assert server.url not in csp, csp
        w = open_page()
        page = w.page
        page.goto(site.origin + "/chat/")
        status = page.locator("#status")
        expect(status).to_have_attribute("data-state", "csp", timeout=15_000)
        expect(status).to_contain_text(f"does not allow {server.url}")
        expect(status).to_contain_text("privchat tunnel setup")
        expect(status).not_to_contain_text("start it with")
        expect(page.locator("#status-reload")).to_be_visible()
        w.shot("csp-01-blocked-origin-named")
        assert server.health()["model"]["state"] == "disabled"  # the server ran all along
    finally:
        site.stop()

    # `privchat site` with the server's own config: connect-src names it, and the page reaches it.
    site = SiteServer(directory, site_origin_port, config=server.config_path).start()
    try:
        csp = httpx.get(site.origin + "/chat/").headers["Content-Security-Policy"]
        assert server.url in csp, csp
        w = open_page()
        page = w.page
        page.goto(site.origin + "/chat/")
        # The server answers (its model is off here, so the page says that, or asks to pair).
        state = wait_state(page, "model_error", "unpaired", "ready", "csp", "unreachable")
        assert state not in ("csp", "unreachable"), page.locator("#status").text_content()
        w.assert_clean()
    finally:
        site.stop()
        server.stop()
