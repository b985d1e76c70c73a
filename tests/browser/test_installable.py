"""The page is an installable app: Chromium finds no installability error, the service worker
controls /chat/, and the installed page opens from its cache when the network (and the site) is gone,
showing its own "offline" state instead of a browser error page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, SiteServer, free_port, site_copy

pytestmark = pytest.mark.browser

API = "http://127.0.0.1:9"  # nothing listens there: the page starts without a server, as offline


def wait_controlled(page: Any) -> str:
    """Waits until the service worker is active and controls the page; returns its script URL."""
    page.wait_for_function("navigator.serviceWorker.ready.then(() => true)", timeout=20_000)
    page.wait_for_function("Boolean(navigator.serviceWorker.controller)", timeout=20_000)
    return page.evaluate("navigator.serviceWorker.controller.scriptURL")


def test_installable_and_opens_offline(tmp_path: Path, built_pages: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `scripts/install --test` (or `apt-get install chromium`).")
    site = SiteServer(site_copy(tmp_path, API), free_port()).start()
    # A persistent profile: Chromium never offers to install from an incognito (new_context) profile.
    playwright = sync_playwright().start()
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        context.set_default_timeout(20_000)
        page = context.pages[0] if context.pages else context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if "content security policy" in m.text.lower() else None)
        page.goto(site.origin + "/chat/")

        # The manifest, as Chromium reads it.
        cdp = context.new_cdp_session(page)
        manifest = cdp.send("Page.getAppManifest")
        assert manifest["url"] == site.origin + "/chat/manifest.webmanifest"
        assert not manifest.get("errors"), manifest.get("errors")

        assert wait_controlled(page) == site.origin + "/chat/sw.js"
        scope = page.evaluate("navigator.serviceWorker.ready.then((r) => [r.scope, r.active.state])")
        assert scope == [site.origin + "/chat/", "activated"]

        # Chromium's installability checks (what decides whether it offers "Install").
        result = cdp.send("Page.getInstallabilityErrors")
        assert result["installabilityErrors"] == [], result

        # What the worker keeps: the page's own files, one cache, nothing else.
        cached = page.evaluate("""async () => {
            const names = await caches.keys();
            const out = {};
            for (const n of names) out[n] = (await (await caches.open(n)).keys()).map((r) => new URL(r.url).pathname).sort();
            return out;
        }""")
        assert len(cached) == 1, cached
        (name, paths), = cached.items()
        assert name.startswith("privchat-static-")
        # opaque.js (the typed code's OPAQUE client) is fetched when a code is typed, not at install.
        assert set(paths) == {"/chat/", "/chat/app.js", "/chat/app.css", "/chat/config.json", "/chat/manifest.webmanifest",
                              "/chat/icon.svg", "/chat/icon-192.png", "/chat/icon-512.png",
                              "/chat/icon-maskable-512.png", "/chat/apple-touch-icon.png"}

        # Offline, and the site itself gone: the shell comes from the cache and says "offline".
        context.set_offline(True)
        site.stop()
        with pytest.raises(httpx.HTTPError):
            httpx.get(site.origin + "/chat/", timeout=2)
        page.reload()  # the open app, reloaded: the shell, not a browser error page
        expect(page.locator(".brand")).to_have_text("privchat")
        assert page.evaluate("Boolean(navigator.serviceWorker.controller)")
        # Opening the app again (a new window, as from the home screen). Chromium keeps the offline
        # emulation of a reloaded page only for pages opened after set_offline, so this one tells
        # the page it is offline the way a phone in flight mode does.
        again = context.new_page()
        again.on("pageerror", lambda e: errors.append(str(e)))
        again.goto(site.origin + "/chat/")
        assert again.evaluate("navigator.onLine") is False
        expect(again.locator(".brand")).to_have_text("privchat")
        expect(again.locator("#status")).to_have_attribute("data-state", "offline", timeout=20_000)
        expect(again.locator("#status .status-text")).to_contain_text("offline", ignore_case=True)
        # app.css came from the cache too: the page's own background, not the browser's default.
        assert again.evaluate("getComputedStyle(document.body).backgroundColor") in ("rgb(246, 247, 249)", "rgb(15, 17, 21)")
        assert again.evaluate("Boolean(navigator.serviceWorker.controller)")
        assert not errors, errors
    finally:
        context.close()
        playwright.stop()
        site.stop()
