"""`privchat site`: the built page with its _headers applied, as Cloudflare Pages would serve it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from privchat.commands.site import create_site_app, headers_for_path, parse_headers_file, serve_site
from tests.support.browser import ensure_built

HEADERS = """# comment
/chat/*
  Content-Security-Policy: default-src 'none'; script-src 'self'
  X-Test: one
/*
  X-Test: two
/chat/config.json
  ! X-Test
"""


def test_header_rules_match_like_pages() -> None:
    rules = parse_headers_file(HEADERS)
    chat = dict(headers_for_path(rules, "/chat/app.js"))
    assert chat["Content-Security-Policy"].startswith("default-src 'none'")
    assert chat["X-Test"] == "one, two"
    assert "X-Test" not in dict(headers_for_path(rules, "/chat/config.json"))
    assert "Content-Security-Policy" not in dict(headers_for_path(rules, "/index.html"))


async def test_the_built_page_is_served_with_its_headers(tmp_path: Path) -> None:
    app = create_site_app(ensure_built())
    client = app.test_client()
    response = await client.get("/chat/")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    redirect = await client.get("/chat")
    assert redirect.status_code == 308 and redirect.headers["Location"] == "/chat/"
    for path in ("/_headers", "/chat/../../pyproject.toml", "/%2e%2e/%2e%2e/pyproject.toml", "/.git/config"):
        assert (await client.get(path)).status_code == 404, path
    assert (await client.post("/chat/")).status_code == 405
    assert (await client.get("/chat/config.json")).status_code == 200


def test_the_site_server_refuses_a_public_address() -> None:
    with pytest.raises(ValueError, match="loopback"):
        asyncio.run(serve_site(ensure_built(), host="0.0.0.0", port=8089))


# with server.port 9765 the page built with the default CSP could not reach the
# server; `privchat site` adds the configured server's origin to connect-src.
def test_the_site_adds_the_configured_servers_origin_to_connect_src(tmp_path: Path) -> None:
    from privchat.commands.site import add_connect_src, api_origins_to_allow
    from privchat.config import config_from_dict

    config = config_from_dict({"server": {"port": 9765}})
    origins = api_origins_to_allow(config)
    assert origins == ["http://127.0.0.1:9765"]
    tunnelled = config_from_dict({"server": {"port": 9765}, "site": {"api_origin": "https://chat-api.example.com"}})
    assert api_origins_to_allow(tunnelled) == ["http://127.0.0.1:9765", "https://chat-api.example.com"]
    csp = "default-src 'none'; connect-src 'self' http://127.0.0.1:8765; base-uri 'none'"
    added = add_connect_src(csp, origins)
    assert "connect-src 'self' http://127.0.0.1:8765 http://127.0.0.1:9765;" in added
    assert added.startswith("default-src 'none'; ") and added.endswith("base-uri 'none'")
    assert add_connect_src(added, origins) == added  # each origin once
    assert add_connect_src("default-src 'self'", origins) == "default-src 'self'"  # no connect-src: not widened

    async def served() -> str:
        client = create_site_app(ensure_built(), origins).test_client()
        return (await client.get("/chat/")).headers["Content-Security-Policy"]

    csp = asyncio.run(served())
    connect = next(d for d in csp.split(";") if d.strip().startswith("connect-src")).split()
    assert "http://127.0.0.1:9765" in connect and "'self'" in connect and "script-src 'self'" in csp


def test_privchat_site_reads_the_config_for_its_csp(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    import httpx

    from tests.support.server import REPO, free_port

    config = tmp_path / "config.yaml"
    config.write_text("server:\n  port: 9765\n")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "privchat", "--config", str(config), "site", "--dir",
                                str(ensure_built()), "--port", str(port)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/chat/", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "privchat site did not start"
                time.sleep(0.1)
        assert "http://127.0.0.1:9765" in response.headers["Content-Security-Policy"]
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert "connect-src also allows http://127.0.0.1:9765" in output, output
