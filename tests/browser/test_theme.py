"""Dark mode follows the system; the owner's pick overrides it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import SiteServer, free_port, site_copy

pytestmark = pytest.mark.browser

DARK_BG, LIGHT_BG = "rgb(15, 17, 21)", "rgb(246, 247, 249)"


def test_theme_follows_the_system_unless_chosen(browser: Any, tmp_path: Path) -> None:
    site = SiteServer(site_copy(tmp_path, "http://127.0.0.1:9"), free_port()).start()
    try:
        for scheme, expected in (("dark", DARK_BG), ("light", LIGHT_BG)):
            context = browser.new_context(color_scheme=scheme)
            page = context.new_page()
            page.goto(site.origin + "/chat/")
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") == expected
            forced = "light" if scheme == "dark" else "dark"
            page.evaluate(f"document.documentElement.dataset.theme = '{forced}'")
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") == (LIGHT_BG if forced == "light" else DARK_BG)
            context.close()
    finally:
        site.stop()
