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
