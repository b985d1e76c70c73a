"""Browser fixtures: Debian's Chromium through Playwright, and a "stack" = a real privchat server
(real model) plus the built page served by `privchat site` on another origin, as in production.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from playwright.sync_api import expect, sync_playwright

# What the page shows is checked with the same patience as what the tests do (20 s): Playwright's
# 5 s default for expect() is no promise of the product, and a busy two-core machine (the suite
# beside `stress-ng --cpu 1`) draws the page after a reload slower than that.
expect.set_options(timeout=20_000)

from tests.support.browser import CHROMIUM, DIST, SiteServer, launch_chromium, screenshot, site_copy, site_port
from tests.support.server import REPO, LiveServer, write_config

PAGES = REPO / "pages"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
PHONE_390 = {**PHONE, "viewport": {"width": 390, "height": 844}}

# Records CSP violations as the page sees them (the console message is the second witness).
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


def _dist_is_stale() -> bool:
    built = DIST / "chat" / "app.js"
    if not built.exists() or not (DIST / "chat" / "index.html").exists():
        return True
    newest = max(p.stat().st_mtime for folder in ("src", "public") for p in (PAGES / folder).rglob("*") if p.is_file())
    newest = max(newest, (PAGES / "_headers").stat().st_mtime, (PAGES / "build.mjs").stat().st_mtime)
    return newest > built.stat().st_mtime


@pytest.fixture(scope="session")
def built_pages() -> Path:
    """pages/dist built from the current sources (rebuilt when any source is newer than it)."""
    if _dist_is_stale():
        if not (PAGES / "node_modules").exists():
            pytest.fail("pages/node_modules is missing: run `npm ci` in pages/ (scripts/install --test does it)")
        result = subprocess.run(["npm", "run", "build"], cwd=PAGES, capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"`npm run build` in pages/ failed:\n{result.stdout}\n{result.stderr}")
    return DIST


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: while Playwright's sync API is open its event loop counts as
    # running in the main thread, and every later test that calls asyncio.run() would fail.
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. "
                    "Install it with `scripts/install --test` (or `apt-get install chromium`).")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@dataclass
class Stack:
    """A privchat server and the site that serves the page, on two different loopback origins."""

    server: LiveServer
    site: SiteServer

    @property
    def chat_url(self) -> str:
        return self.site.origin + "/chat/"

    def pairing(self) -> dict[str, Any]:
        """`privchat pair --json`: code, url (…/chat/#pair=…&api=…), expires_at, api_origin."""
        return json.loads(self.server.cli("pair", "--json").stdout)

    def devices(self) -> list[dict[str, Any]]:
        return json.loads(self.server.cli("devices", "list", "--json").stdout)["devices"]

    def export(self) -> dict[str, Any]:
        return json.loads(self.server.cli("history", "export").stdout)

    def stored(self, message_id: str) -> dict[str, Any]:
        """The message as the server stored it (from the export), with its ``conversation_id``."""
        for conversation in self.export()["conversations"]:
            for message in conversation["messages"]:
                if message["id"] == message_id:
                    return {**message, "conversation_id": conversation["id"]}
        raise AssertionError(f"message {message_id} is not in the export")

    def stop(self) -> None:
        self.site.stop()
        self.server.stop()


def start_stack(folder: Path, overrides: dict[str, Any] | None = None, *, wait_for: str = "ready") -> Stack:
    port = site_port()
    site_origin = f"http://127.0.0.1:{port}"
    config = {"server": {"allowed_origins": [site_origin]}, "site": {"url": site_origin}}
    for section, values in (overrides or {}).items():
        config.setdefault(section, {}).update(values)
    server = LiveServer(folder, write_config(folder, config)).start(wait_for=wait_for)
    try:
        site = SiteServer(site_copy(folder, server.url), port, config=server.config_path).start()
    except BaseException:
        server.stop()
        raise
    return Stack(server, site)


@pytest.fixture
def stack_factory(tmp_path: Path, built_pages: Path) -> Iterator[Any]:
    """start_stack(name, overrides) for stacks only one test uses (stopped at the end of the test)."""
    started: list[Stack] = []

    def make(name: str = "stack", overrides: dict[str, Any] | None = None, **kwargs: Any) -> Stack:
        stack = start_stack(tmp_path / name, overrides, **kwargs)
        started.append(stack)
        return stack

    yield make
    for stack in started:
        stack.stop()


@pytest.fixture
def paired_page(stack_factory: Any, open_page: Any) -> Any:
    """paired_page(name, overrides, device=…, options=…) → (Stack, Watched): a stack only this test
    uses and a fresh page (``options``: open_page's) paired to it through the `privchat pair` link."""

    def make(name: str, overrides: dict[str, Any] | None = None, *, device: str,
             options: dict[str, Any] | None = None) -> tuple[Stack, Watched]:
        stack = stack_factory(name, overrides)
        w = open_page(options)
        pair_with_link(w.page, stack, device)
        return stack, w

    return make


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory: pytest.TempPathFactory, built_pages: Path) -> Iterator[Stack]:
    """One stack for a module's tests that neither stop the server nor revoke anything."""
    stack = start_stack(tmp_path_factory.mktemp("browser-stack"))
    yield stack
    stack.stop()


@dataclass
class Watched:
    """A page with everything it reported: console errors, uncaught errors, CSP violations."""

    page: Any
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def csp_problems(self) -> list[str]:
        seen = [m for m in self.console if "content security policy" in m.lower()]
        try:
            seen += self.page.evaluate("window.__cspViolations || []")
        except Exception:  # the page may be mid-navigation or closed; the console list still counts
            pass
        return seen

    def assert_clean(self, *, blocked_handlers: bool = False) -> None:
        """No uncaught page error and no CSP violation during the test.

        ``blocked_handlers``: allow reports of inline event handlers refused by script-src. Chromium
        reports one whenever HTML with an on* attribute is parsed, even in the inert document the
        sanitizer parses into, so a test that renders such payloads sees them (nothing ran).
        """
        assert not self.errors, f"uncaught errors in the page: {self.errors}"
        problems = self.csp_problems()
        if blocked_handlers:
            problems = [p for p in problems if "inline event handler" not in p and not p.startswith("script-src-attr ")]
        assert not problems, f"CSP violations: {problems}"

    def shot(self, name: str) -> Path:
        return screenshot(self.page, name)


@pytest.fixture
def open_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """open_page(**context options) → Watched: a fresh context (own IndexedDB) and page, watched."""
    contexts: list[Any] = []
    watched: list[Watched] = []

    def make(options: dict[str, Any] | None = None) -> Watched:
        context = browser.new_context(**{**DESKTOP, **(options or {}), "accept_downloads": True})
        context.set_default_timeout(20_000)
        context.add_init_script(CSP_RECORDER)
        contexts.append(context)
        page = context.new_page()
        w = Watched(page)
        page.on("console", lambda m: w.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: w.errors.append(str(e)))
        watched.append(w)
        return w

    yield make
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for i, w in enumerate(watched):
            try:
                screenshot(w.page, f"FAILED-{request.node.name}-{i}")
            except Exception:
                pass
            print(f"page {i} console:", *w.console[-30:], sep="\n  ")
    for context in contexts:
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


# ------------------------------------------------------------------ steps the tests share

REPLY_TIMEOUT_MS = 90_000
LAST_REPLY = '.message[data-role="assistant"] >> nth=-1'

# Records (status, text length) of the newest reply at every DOM change, to see it grow.
WATCH_REPLY = """
() => {
  if (window.__replyObserver) window.__replyObserver.disconnect();
  window.__replyLog = [];
  const root = document.querySelector("#messages");
  const before = root.querySelectorAll('.message[data-role="assistant"]').length;
  const record = () => {
    const all = root.querySelectorAll('.message[data-role="assistant"]');
    if (all.length <= before) return;
    const last = all[all.length - 1];
    window.__replyLog.push([last.dataset.status, last.querySelector(".message-body").textContent.length]);
  };
  window.__replyObserver = new MutationObserver(record);
  window.__replyObserver.observe(root, {subtree: true, childList: true, characterData: true, attributes: true,
                                       attributeFilter: ["data-status"]});
}
"""


def frame_drawn(page: Any) -> None:
    """Returns once the page drew a frame: a render it scheduled before (a message's text is drawn in
    a requestAnimationFrame, MessageList.js) has run, since a frame runs its callbacks in order."""
    page.evaluate("() => new Promise((drawn) => requestAnimationFrame(() => drawn()))")


def drawer_slid_in(page: Any) -> None:
    """Waits until the phone's conversation drawer has slid all the way in (its 0.2 s transform ends
    at the left edge), so a screenshot shows it where the owner sees it."""
    page.wait_for_function("() => document.querySelector('#sidebar').getBoundingClientRect().left >= 0")


def wait_state(page: Any, *states: str, timeout: float = 20_000) -> str:
    """Waits until #status has one of ``states``; returns the one it has."""
    page.wait_for_function("(states) => states.includes(document.querySelector('#status').dataset.state)",
                           arg=list(states), timeout=timeout)
    return page.get_attribute("#status", "data-state")


def submit_pairing(page: Any, name: str, *, tap: bool = False) -> None:
    page.fill("#device-name", name)
    button = page.locator("#pair-button")
    button.tap() if tap else button.click()
    expect(page.locator("#app")).to_have_attribute("data-view", "chat")
    wait_state(page, "ready", timeout=30_000)


def pair_with_link(page: Any, stack: Any, name: str) -> dict[str, Any]:
    """Opens the `privchat pair` link and pairs; returns the pairing JSON."""
    pairing = stack.pairing()
    assert "#pair=" in pairing["url"] and pairing["url"].startswith(stack.chat_url)
    page.goto(pairing["url"])
    expect(page.locator("#pair-code")).to_have_value(pairing["code"])
    submit_pairing(page, name)
    return pairing


def close_pair_banner(page: Any) -> None:
    """Closes the banner a fresh pairing shows, if it is there."""
    if page.locator("#pair-banner-close").is_visible():
        page.click("#pair-banner-close")


def send_and_watch(page: Any, text: str, *, click: Any = None) -> list[tuple[str, int]]:
    """Sends ``text`` (Enter, or ``click`` a locator) and waits for the reply to complete;
    returns the (status, length) log of the reply while it streamed."""
    page.evaluate(WATCH_REPLY)
    page.fill("#message-input", text)
    if click is None:
        page.press("#message-input", "Enter")
    else:
        click()
    reply = page.locator(LAST_REPLY)
    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    log = [tuple(entry) for entry in page.evaluate("window.__replyObserver.disconnect() || window.__replyLog")]
    assert log, "no reply appeared"
    return log


def assert_streamed(log: list[tuple[str, int]]) -> None:
    """The reply was shown as streaming, grew in more than one step, and ended complete."""
    streaming_lengths = sorted({length for status, length in log if status == "streaming" and length > 0})
    assert len(streaming_lengths) >= 2, f"the reply did not grow token by token while streaming: {log}"
    assert log[-1][0] == "complete", log
    assert log[-1][1] >= streaming_lengths[-1] > 0, log
