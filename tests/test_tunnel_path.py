"""The whole path from anywhere, with real cloudflared: Chromium -> edge stand-in -> cloudflared -> tunnel.port.

The chain is the production one, minus Cloudflare's network:

* the **edge stand-in** (tests/support/edge.py) plays what only Cloudflare runs: the Access login and
  cookie, the JWT header, and the answers to CORS preflights, configured with exactly the values
  ``privchat tunnel setup`` tells the owner to enter in the Access application;
* **cloudflared's own origin code** (tests/support/cloudflared.py: ingress matching, the Access JWT
  validator, the origin proxy, built from cloudflared's source) runs the cloudflared config that
  ``privchat tunnel setup`` wrote, and fetches the team's keys through a local CONNECT proxy;
* **privchat** listens on its tunnel port, where every request needs the Access JWT.

The page is served as www.standin.test and calls the API as chat-api.standin.test, both mapped to
loopback inside Chromium: same site, as chat.example.com and chat-api.example.com are in production,
so the Access cookie rides along, and the API origin is not a loopback one, so the page has to tell
"Access wants a sign-in" from "your computer is not answering" the way it must on a phone.

Where ../shared/tools/cloudflared is absent (a user's clone), these tests skip and say how to run them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, SiteServer, screenshot, site_copy
from tests.support.cloudflared import AccessKeyServer, OriginHarness, require_harness
from privchat.e2e.suite import FRAME_SIZES, FRAME_TICK_SECONDS
from tests.support.e2e import FrameReader, open_events
from tests.support.edge import ACCESS_HEADER, COOKIE, AccessCors, EdgeStandIn, Tamper
from tests.support.server import BackgroundStream, LiveServer, SignedClient, free_port, parse_sse, run_cli, write_config
from tests.support.signing import TestDevice

PUBLIC_HOST = "chat-api.standin.test"
SITE_HOST = "www.standin.test"
TUNNEL_UUID = "6ff42ae2-765d-4adf-8112-31c55c1551ef"


@dataclass
class Chain:
    standin: EdgeStandIn
    keys: AccessKeyServer
    harness: OriginHarness
    server: LiveServer
    site: SiteServer
    site_origin: str
    setup: dict[str, Any]  # `privchat tunnel setup --json`

    def via_edge(self, device: TestDevice) -> SignedClient:
        """A client that signed in to Access (has the session cookie) and calls the API through the edge."""
        return SignedClient(self.standin.url, device, extra_headers={"Cookie": f"{COOKIE}={self.standin.mint()}"})

    def at_cloudflared(self, device: TestDevice, access_token: str | None) -> SignedClient:
        """Straight to cloudflared, as the edge would send it, with whatever token the test gives."""
        headers = {ACCESS_HEADER: access_token} if access_token is not None else {}
        return SignedClient(self.harness.url, device, host=PUBLIC_HOST, extra_headers=headers)

    def at_tunnel_port(self, device: TestDevice, access_token: str | None, host: str = PUBLIC_HOST) -> SignedClient:
        """Skipping the edge and cloudflared: straight to privchat's tunnel port."""
        headers = {ACCESS_HEADER: access_token} if access_token is not None else {}
        return SignedClient(self.server.tunnel_url, device, host=host, extra_headers=headers)


def tunnel_setup(folder: Path, standin: EdgeStandIn, tunnel_port: int) -> dict[str, Any]:
    """Run the owner's `privchat tunnel setup` for the stand-in's Access application; returns its JSON summary."""
    scratch = folder / "setup"
    scratch.mkdir()
    result = run_cli(scratch / "config.yaml", "tunnel", "setup", "--yes", "--json",
                     "--site-url=https://standin.test", f"--api-hostname={PUBLIC_HOST}", f"--page-origin=https://{SITE_HOST}",
                     f"--tunnel={TUNNEL_UUID}", f"--credentials-file={scratch / 'creds.json'}",
                     f"--team-name={standin.team_name}", f"--aud={standin.aud}", f"--tunnel-port={tunnel_port}",
                     f"--cloudflared-config={folder / 'cloudflared.yml'}", f"--pages-dir={scratch / 'no-pages'}")
    return json.loads(result.stdout)


def access_cors_from_setup(setup: dict[str, Any], site_origin: str) -> AccessCors:
    """What the owner enters in the Access application, verbatim. The one difference is the page's
    origin: the test serves it over http on a loopback port, where the owner has https://www.standin.test."""
    cors = setup["access_cors"]
    assert cors["allowed_origins"] == [f"https://{SITE_HOST}"]
    return AccessCors(allowed_origins=[site_origin], allow_credentials=cors["allow_credentials"],
                      allowed_methods=cors["allowed_methods"], allowed_headers=cors["allowed_headers"], max_age=cors["max_age"])


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    require_harness()
    folder: Path = tmp_path_factory.mktemp("chain")
    backend_port, tunnel_port, site_port = free_port(), free_port(), free_port()
    site_origin = f"http://{SITE_HOST}:{site_port}"
    standin = EdgeStandIn("http://127.0.0.1:9", public_hostname=PUBLIC_HOST).start()
    setup = tunnel_setup(folder, standin, tunnel_port)
    standin.cors = access_cors_from_setup(setup, site_origin)
    config = write_config(folder, {
        "server": {"allowed_origins": [site_origin]},
        "tunnel": {"port": tunnel_port},
        "site": {"url": site_origin, "api_origin": standin.public_origin},
        "access": {"team_domain": standin.team_domain, "aud": [standin.aud], "public_hostnames": [PUBLIC_HOST],
                   "certs_url": standin.jwks_url},
    }, port=backend_port)
    keys = harness = server = site = None
    try:
        keys = standin.access_key_server().start()
        harness = OriginHarness(folder / "cloudflared.yml", access=keys).start()
        standin.upstream_url = harness.url
        server = LiveServer(folder, config).start()
        site = SiteServer(site_copy(folder, standin.public_origin), site_port).start()
        yield Chain(standin, keys, harness, server, site, site_origin, setup)
    finally:
        for part in (site, server, harness, keys):
            if part is not None:
                part.stop()
        standin.stop()


def error_code(response: httpx.Response) -> tuple[int, str, str]:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return response.status_code, "", response.text[:200]
    return response.status_code, error["code"], error["message"]


PAGE_PREFLIGHT = {"Access-Control-Request-Method": "POST",
                  "Access-Control-Request-Headers": "content-digest,content-type,signature,signature-input"}


# --- the defect this fixes, and what setup prints instead ---------------------------------------------------

def test_bypassed_preflight_dies_at_cloudflared(chain: Chain) -> None:
    """'Bypass OPTIONS requests to origin' sends the preflight on without a token: real cloudflared refuses it."""
    before = chain.server.log()
    response = httpx.request("OPTIONS", chain.harness.url + "/api/chat", timeout=30,
                             headers={"Host": PUBLIC_HOST, "Origin": chain.site_origin, **PAGE_PREFLIGHT})
    assert response.status_code == 403 and not response.content
    assert "Access-Control-Allow-Origin" not in response.headers
    assert chain.server.log() == before, "the preflight reached privchat"


def test_access_answers_the_preflight_with_the_values_setup_printed(chain: Chain) -> None:
    forwarded = chain.standin.forwarded_count
    response = httpx.request("OPTIONS", chain.standin.url + "/api/chat", timeout=30,
                             headers={"Origin": chain.site_origin, **PAGE_PREFLIGHT})
    assert response.status_code == 200, response.text
    assert response.headers["Access-Control-Allow-Origin"] == chain.site_origin
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert chain.standin.forwarded_count == forwarded, "a preflight went through the tunnel"
    # A header the page does not send is not allowed: the printed list is exact, not a wildcard.
    other = httpx.request("OPTIONS", chain.standin.url + "/api/chat", timeout=30, headers={
        "Origin": chain.site_origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-other"})
    assert "Access-Control-Allow-Origin" not in other.headers
    # And no origin but the page's.
    foreign = httpx.request("OPTIONS", chain.standin.url + "/api/chat", timeout=30,
                            headers={"Origin": "https://evil.example", **PAGE_PREFLIGHT})
    assert "Access-Control-Allow-Origin" not in foreign.headers


def test_without_a_session_access_sends_to_its_login(chain: Chain) -> None:
    standin, before = chain.standin, chain.standin.forwarded_count
    origin = {"Origin": chain.site_origin}
    refused = httpx.get(standin.url + "/api/health", headers=origin)
    assert refused.status_code == 302 and "/cdn-cgi/access/login?redirect_url=" in refused.headers["Location"]
    assert "Access-Control-Allow-Origin" not in refused.headers  # so a page's fetch fails as a CORS error
    for bad in (standin.expired_token(), standin.forged_token()):
        assert httpx.get(standin.url + "/api/health", headers={**origin, "Cookie": f"{COOKIE}={bad}"}).status_code == 302
    assert standin.forwarded_count == before, "the stand-in let a request without a valid session through"
    page = httpx.get(standin.login_url(standin.url + "/api/health"))
    assert page.status_code == 200 and COOKIE not in page.headers.get("Set-Cookie", ""), "signing in needs a person"
    login = httpx.post(standin.login_url(standin.url + "/api/health"))
    assert login.status_code == 302 and login.headers["Location"] == standin.url + "/api/health"
    assert login.cookies.get(COOKIE) and "HttpOnly" in login.headers["Set-Cookie"]
    with_session = httpx.get(standin.url + "/api/health", cookies={COOKIE: login.cookies[COOKIE]})
    assert with_session.status_code == 200 and with_session.json()["status"] == "ok"
    assert chain.keys.certs_fetches >= 1, "cloudflared never fetched the team's keys, so it checked no JWT"


# --- what real cloudflared answers, and what privchat answers behind it ----------------------------------

@pytest.fixture(scope="module")
def device(chain: Chain) -> TestDevice:
    client = chain.via_edge(TestDevice(name="paired through the edge"))
    response = client.register(chain.server.pair_code(), "paired through the edge")
    assert response.status_code == 201, response.text
    return client.device


@pytest.mark.parametrize(("case", "status"), [("none", 403), ("wrong_aud", 403), ("expired", 502), ("wrong_issuer", 502),
                                              ("forged", 502)])
def test_cloudflared_refuses_bad_tokens_before_privchat(chain: Chain, device: TestDevice, case: str, status: int) -> None:
    standin = chain.standin
    token = {"none": None, "wrong_aud": standin.wrong_aud_token(), "expired": standin.expired_token(),
             "wrong_issuer": standin.mint(iss="https://otherteam.cloudflareaccess.com"),
             "forged": standin.forged_token()}[case]
    before = chain.server.log()
    response = chain.at_cloudflared(device, token).get("/api/auth/device")
    assert response.status_code == status, (response.status_code, response.text)
    assert chain.server.log() == before
    ok = chain.at_cloudflared(device, standin.mint()).get("/api/auth/device")  # the control
    assert ok.status_code == 200 and ok.json()["device_id"] == device.device_id


@pytest.mark.parametrize("case", ["none", "forged_same_kid", "forged_new_kid", "expired", "wrong_aud"])
def test_privchat_refuses_the_same_on_its_tunnel_port(chain: Chain, device: TestDevice, case: str) -> None:
    """Defence in depth: a request that skips the edge and cloudflared gets the same answer from privchat."""
    standin = chain.standin
    token, says = {
        "none": (None, "without a Cloudflare Access token"),
        "forged_same_kid": (standin.forged_token(same_kid=True), "InvalidSignatureError"),
        "forged_new_kid": (standin.forged_token(same_kid=False), "unknown key"),
        "expired": (standin.expired_token(), "expired"),
        "wrong_aud": (standin.wrong_aud_token(), "(aud)"),
    }[case]
    for host in (PUBLIC_HOST, "127.0.0.1"):
        status, code, message = error_code(chain.at_tunnel_port(device, token, host=host).get("/api/auth/device"))
        assert (status, code) == (403, "access_denied"), message
        assert says in message, message
    response = chain.at_tunnel_port(device, standin.mint()).get("/api/auth/device")  # the control
    assert response.status_code == 200, response.text


# --- the stream is not buffered on the way -------------------------------------------------------------------

@pytest.mark.model
def test_stream_through_the_chain_arrives_token_by_token(chain: Chain, device: TestDevice) -> None:
    client = chain.via_edge(device)
    body = {"message": "Write a short story about a cat who learns to sail.", "options": {"max_tokens": 48, "temperature": 0}}
    response = client.request("POST", "/api/chat", json_body=body, stream=True)
    arrivals: list[tuple[float, str]] = []  # (time the event's last byte arrived, event)
    buffer = ""
    frames = FrameReader(response.opener)
    try:
        assert response.status_code == 200, response.read()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for chunk in response.iter_raw():
            now = time.monotonic()
            buffer += chunk.decode("utf-8")
            complete, _sep, buffer = buffer.rpartition("\n\n")
            if complete:  # sealed frames: opened in order, each with its number
                opened = open_events(frames, iter([complete + "\n\n"]), whole=False)
                arrivals.extend((now, event) for event, _data in parse_sse(opened) if event != "ping")
    finally:
        response.close()
    events = [event for _t, event in arrivals]
    assert events[0] == "start" and events[-1] == "done", events
    tokens = [t for t, event in arrivals if event == "token"]
    assert len(tokens) >= 8, f"only {len(tokens)} token events"
    assert tokens[-1] - tokens[0] >= 0.1, "all tokens arrived at once: something on the path buffered the stream"
    # The tokens of one 100 ms tick share a frame, so a few share a read; a buffering hop would deliver one or two.
    assert len({round(t, 6) for t in tokens}) >= 3
    assert chain.standin.forwarded[-1].target == "/api/chat"


@pytest.mark.model
@pytest.mark.parametrize("idle_cutoff", [2.0, FRAME_TICK_SECONDS / 2])
def test_empty_frames_keep_a_waiting_reply_past_the_edge_idle_cutoff(chain: Chain, device: TestDevice, idle_cutoff: float) -> None:
    """The edge ends a response after 100 s of silence (524). A reply waiting behind another one's has
    nothing to say until its turn, but its stream still sends a frame every tick (empty ones while it
    waits: docs/E2E.md): with the edge's cutoff scaled down to 2 s the waiting reply arrives whole;
    with a cutoff shorter than a tick (the negative control) the edge cuts it, so the frames are what
    keep it alive."""
    standin = chain.standin
    standin.idle_timeout = idle_cutoff
    try:
        # The reply ahead only keeps the model busy: it goes to the local port, past the edge.
        ahead = BackgroundStream(SignedClient(chain.server.url, device), {"message": "Write a long story about a lighthouse.",
                                                          "options": {"max_tokens": 300, "temperature": 0}})
        assert ahead.streaming.wait(60), ahead.events
        started = time.monotonic()
        try:
            events = chain.via_edge(device).chat("Say hello.", max_tokens=8, temperature=0)
        except Exception as exc:  # noqa: BLE001 - the cut stream surfaces as a protocol error
            events = [("cut", repr(exc))]
        waited = time.monotonic() - started
        ahead.join(120)
    finally:
        standin.idle_timeout = 100.0
    cut = [f for f in standin.forwarded if f.target == "/api/chat" and f.outcome == "idle-timeout"]
    if idle_cutoff > FRAME_TICK_SECONDS:
        assert [e for e, _ in events if e != "ping"][-1] == "done", events
        # support/e2e.py shows an empty frame as a ping: the waiting reply got them before its tokens.
        assert sum(1 for e, _ in events if e == "ping") >= 2 and waited > idle_cutoff, (waited, events)
        assert not cut
    else:
        assert cut and not any(e == "done" for e, _ in events), events


# --- the page, through the whole chain, in Chromium -------------------------------------------------------

def launch(playwright: Any, chain: Chain) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        *CHROMIUM_ARGS, *chain.standin.chromium_args(),
        # http://www.standin.test stands in for an https site: WebCrypto and IndexedDB need a secure context.
        f"--unsafely-treat-insecure-origin-as-secure={chain.site_origin}"])


def signed_in_and_paired(browser: Any, chain: Chain, code: str) -> Any:
    """A new page that signed in to Access through its button and paired with ``code`` (typed)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(chain.site_origin + "/chat/")
    page.wait_for_selector("#status[data-state=access]", timeout=20_000)
    sign_in_through_the_button(context, page, "#access-signin", chain)
    page.fill("#pair-code", code)
    page.click("#pair-button")
    page.wait_for_selector("#status[data-state=ready]", timeout=30_000)
    return page


def sign_in_through_the_button(context: Any, page: Any, button: str, chain: Chain) -> None:
    with context.expect_page() as opened:
        page.click(button)
    tab = opened.value
    tab.wait_for_load_state()
    tab.click("#access-login")  # Access's sign-in page: the owner signs in
    tab.wait_for_url(chain.standin.public_origin + "/api/**")
    assert '"status"' in tab.content()  # the tab ended on the API, past the login
    tab.close()
    page.bring_to_front()


@pytest.mark.browser
@pytest.mark.model
def test_page_signs_in_pairs_chats_stops_and_is_revoked_through_the_chain(chain: Chain) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    standin = chain.standin
    code = chain.server.pair_code()
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright, chain)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(chain.site_origin + "/chat/")
            # No session cookie: the page must say "sign in", not "server down".
            page.wait_for_selector("#status[data-state=access]", timeout=20_000)
            assert page.is_visible("#access-signin")
            screenshot(page, "tunnel-path-1-access-needed")

            # Trying to pair before signing in: the form offers the sign-in; nothing went through the tunnel.
            forwarded_before = standin.forwarded_count
            page.fill("#pair-code", code)
            page.click("#pair-button")
            page.wait_for_selector("#pair-error #pair-signin", timeout=20_000)
            assert "Access" in page.text_content("#pair-error")
            assert standin.forwarded_count == forwarded_before

            sign_in_through_the_button(context, page, "#pair-signin", chain)
            cookies = {c["name"]: c for c in context.cookies(standin.public_origin)}
            assert COOKIE in cookies and cookies[COOKIE]["httpOnly"]
            page.click("#pair-retry")
            page.wait_for_selector("#status[data-state=ready]", timeout=30_000)
            fingerprint = page.text_content("#fingerprint").strip()

            # A reply streams: the first token is on screen before the reply is finished.
            page.fill("#message-input", "Write a long story about a lighthouse keeper and a storm.")
            page.keyboard.press("Enter")
            page.wait_for_function("""() => {
                const m = document.querySelector('.message[data-role="assistant"]');
                return m && m.dataset.status === 'streaming' && m.querySelector('.message-body').textContent.trim().length > 0; }""", timeout=60_000)
            page.wait_for_selector('.message[data-role="assistant"][data-status="complete"]', timeout=90_000)
            screenshot(page, "tunnel-path-2-chat")

            # History comes back after a reload, through the chain.
            page.reload()
            page.wait_for_selector("#status[data-state=ready]", timeout=30_000)
            page.wait_for_selector('.conversation-item', timeout=20_000)

            # Stop: a long reply is stopped and kept as stopped. Its first token must be on screen (a
            # reply still waiting for the model shows a notice, and stopping that keeps the message unsent).
            page.click("#new-conversation")
            page.fill("#message-input", "Count from one to two hundred in words, one per line.")
            page.keyboard.press("Enter")
            page.wait_for_function("""() => {
                const all = document.querySelectorAll('.message[data-role="assistant"]');
                const m = all[all.length - 1];
                return m && m.dataset.status === 'streaming' && m.querySelector('.message-body').textContent.trim().length > 0; }""", timeout=60_000)
            page.click("#stop-button")
            try:
                page.wait_for_function("""() => {
                    const all = document.querySelectorAll('.message[data-role="assistant"]');
                    const m = all[all.length - 1];
                    return m && m.dataset.status !== 'streaming'; }""", timeout=30_000)
            except Exception as exc:  # say what the page, the server and the edge saw (this has been seen once under load)
                screenshot(page, "tunnel-path-stop-not-ended")
                seen = "\n".join(f"{f.method} {f.target} {f.status} {f.outcome}" for f in standin.forwarded[-12:])
                raise AssertionError(f"the stopped reply still streams after 30 s\n--- edge:\n{seen}\n"
                                     f"--- server log:\n{chain.server.log()[-3000:]}") from exc
            assert page.locator('.message[data-role="assistant"]').last.get_attribute("data-status") == "cancelled"

            # Revoked from the CLI: the very next request through the chain is refused and the page says so.
            devices = json.loads(chain.server.cli("devices", "list", "--json").stdout)["devices"]
            mine = [d for d in devices if d["fingerprint"] == fingerprint]
            assert mine and mine[0]["status"] == "active" and mine[0]["last_seen_at"], devices
            chain.server.cli("devices", "revoke", mine[0]["fingerprint"])
            page.evaluate("window.dispatchEvent(new Event('focus'))")
            page.wait_for_selector("#status[data-state=revoked]", timeout=30_000)
            screenshot(page, "tunnel-path-3-revoked")
        finally:
            browser.close()

    sent = [(f.method, f.target.split("?", 1)[0], f.status) for f in standin.forwarded]
    assert ("POST", "/api/auth/device", 201) in sent and ("POST", "/api/chat", 200) in sent
    assert not any(method == "OPTIONS" for method, _path, _status in sent), "a preflight went through the tunnel"
    assert {p.method for p in standin.preflights if p.status == 200} >= {"POST"}, standin.preflights
    for item in standin.forwarded:
        assert item.headers["Host"] == PUBLIC_HOST and ACCESS_HEADER in item.headers


KEYS_IN_BROWSER = """() => new Promise((ok, fail) => {
    const open = indexedDB.open("privchat");
    open.onerror = () => fail(open.error);
    open.onsuccess = () => {
        const count = open.result.transaction("device").objectStore("device").count();
        count.onsuccess = () => ok(count.result);
        count.onerror = () => fail(count.error);
    };
})"""


@pytest.mark.browser
def test_the_page_believes_no_unsealed_refusal_and_sees_a_changed_status(chain: Chain) -> None:
    """An edge that changes traffic, between Chromium and the real cloudflared: after pairing, it
    answers the page's signed requests itself with plain 401 device_unknown, 403 device_revoked and
    400 e2e_key_unknown (each with a phishing line), then changes the status of a sealed answer. The
    page keeps its device key, opens no pairing form, shows none of the edge's words, says an
    answer was not sealed (or that a status was changed), and works again once the edge stops."""
    sync_api = pytest.importorskip("playwright.sync_api")
    standin = chain.standin
    code = chain.server.pair_code()
    lure = "Your session ended: pair again at https://evil.example"
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright, chain)
        try:
            page = signed_in_and_paired(browser, chain, code)
            keys = page.evaluate(KEYS_IN_BROWSER)
            assert keys >= 1
            signed = lambda method, target: method != "OPTIONS" and target.startswith("/api/") and not target.startswith("/api/health")  # noqa: E731
            for status, refusal in ((401, "device_unknown"), (403, "device_revoked"), (400, "e2e_key_unknown")):
                standin.tamper = lambda method, target, s=status, c=refusal: Tamper("forge", s, c, lure) if signed(method, target) else None
                try:
                    page.reload()
                    page.wait_for_selector("#status[data-state=unsealed]", timeout=30_000)
                    screenshot(page, f"tunnel-path-6-forged-{refusal}")
                    assert page.evaluate(KEYS_IN_BROWSER) == keys, refusal  # no key deleted
                    assert not page.is_visible("#pairing-view"), refusal  # no pairing form opened
                    assert "evil.example" not in page.inner_text("body"), refusal  # none of the edge's words
                finally:
                    standin.tamper = None
                page.click("#status-actions button")  # Retry, with the edge gone honest
                page.wait_for_selector("#status[data-state=ready]", timeout=30_000)
            # A sealed answer whose status the edge changes (who-am-I's 200 made a 404): not believed.
            standin.tamper = lambda method, target: Tamper("status", 404) if target == "/api/auth/device" and method == "GET" else None
            try:
                page.reload()
                page.wait_for_function("() => document.querySelector('#status').textContent.includes('changed on the way')",
                                       timeout=30_000)
                screenshot(page, "tunnel-path-7-changed-status")
                assert page.evaluate(KEYS_IN_BROWSER) == keys and not page.is_visible("#pairing-view")
            finally:
                standin.tamper = None
            page.reload()
            page.wait_for_selector("#status[data-state=ready]", timeout=30_000)
        finally:
            standin.tamper = None
            browser.close()
    forged = [f for f in standin.forwarded if f.outcome == "forged"]
    assert len(forged) >= 3, [(f.method, f.target, f.outcome) for f in standin.forwarded[-20:]]


@pytest.mark.browser
def test_page_tells_sign_in_from_an_unreachable_computer(chain: Chain, tmp_path: Path) -> None:
    """Access wants a sign-in; cloudflared refuses the token; privchat is down: three different sentences."""
    sync_api = pytest.importorskip("playwright.sync_api")
    standin, server = chain.standin, chain.server
    code = server.pair_code()
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright, chain)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": COOKIE, "value": standin.mint(), "url": standin.public_origin, "httpOnly": True}])
            page = context.new_page()
            page.goto(chain.site_origin + f"/chat/#pair={code}&api={standin.public_origin}")
            page.click("#pair-button")
            page.wait_for_selector("#status[data-state=ready]", timeout=30_000)

            # The Access application's AUD changed (a misconfiguration): cloudflared answers 403. A token
            # cloudflared cannot verify (expired, another team): its 502. Neither is a crash or a sign-in loop.
            for bad_token in (standin.wrong_aud_token, standin.expired_token):
                standin.forward_token = bad_token
                page.evaluate("window.dispatchEvent(new Event('focus'))")
                page.wait_for_selector("#status[data-state=tunnel]", timeout=30_000)
                standin.forward_token = None
                page.click("#status-retry")
                page.wait_for_selector("#status[data-state=ready]", timeout=30_000)

            # The computer's privchat is down: cloudflared's 502.
            server.stop()
            try:
                page.evaluate("window.dispatchEvent(new Event('focus'))")
                page.wait_for_selector("#status[data-state=tunnel]", timeout=30_000)
                text = page.text_content("#status")
                assert "not reachable through the tunnel" in text and "sign" not in text.lower(), text
                assert not page.is_visible("#access-signin") and page.is_visible("#status-retry")
                screenshot(page, "tunnel-path-4-computer-unreachable")
            finally:
                server.start()
            # Back: a focus checks at once. (Not the Retry button: the page's own next check may
            # already have found the server and taken the button away.)
            page.evaluate("window.dispatchEvent(new Event('focus'))")
            page.wait_for_selector("#status[data-state=ready]", timeout=30_000)

            # The session ends: Access's redirect, and the page asks for a sign-in again (the control).
            context.clear_cookies()
            context.add_cookies([{"name": COOKIE, "value": standin.mint(lifetime=3), "url": standin.public_origin, "httpOnly": True}])
            page.evaluate("window.dispatchEvent(new Event('focus'))")
            page.wait_for_selector("#status[data-state=ready]", timeout=20_000)  # learns the short session's end
            time.sleep(4)
            page.evaluate("window.dispatchEvent(new Event('focus'))")
            page.wait_for_selector("#status[data-state=access]", timeout=20_000)
            sign_in_through_the_button(context, page, "#access-signin", chain)
            page.click("#status-retry")
            page.wait_for_selector("#status[data-state=ready]", timeout=20_000)
        finally:
            browser.close()


# --- what crosses the edge: only ciphertext -------------------------------------------------

# Each marker has a non-ASCII letter, so its JSON-escaped form ("\u03a9") differs from its UTF-8 bytes
# and both are searched; base64 is searched at all three alignments, standard and URL-safe.
MESSAGE_MARKER = "Quokka-Ωmega-7731"
SYSTEM_MARKER = "Narwhal-Ωsystem-4402"
TITLE_MARKER = "Axolotl-Ωtitle-9150"
IMPORT_MARKER = "Pangolin-Ωimport-6628"
DEVICE_MARKER = "Ibis-Ωdevice-3317"
CONTROL_MARKER = "Okapi-Ωcontrol-5584"


def forms_of(text: str) -> list[bytes]:
    """The byte strings that would give ``text`` away: raw, JSON-escaped, and base64 of it at every
    alignment (the part of the encoding that depends on the text alone), standard and URL-safe."""
    import base64

    raw = text.encode("utf-8")
    forms = [raw, json.dumps(text).strip('"').encode("ascii"), json.dumps(text, ensure_ascii=False).strip('"').encode()]
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw)
        start = (offset * 4 + 2) // 3 + (1 if offset else 0)  # skip the characters that mix in the padding bytes
        stable = encoded[start: start + (len(raw) * 4) // 3 - 4]
        forms += [stable, stable.replace(b"+", b"-").replace(b"/", b"_")]
    return [form for form in forms if len(form) >= 8]


def found_in(capture: bytes, text: str) -> list[bytes]:
    return [form for form in forms_of(text) if form in capture]


def test_the_scan_finds_every_form_it_looks_for() -> None:
    """The scan itself, on bytes built to contain each form: it must be able to fail."""
    import base64

    for prefix in (b"", b"x", b"xy"):
        blob = base64.b64encode(prefix + MESSAGE_MARKER.encode())
        assert found_in(b"...." + blob + b"....", MESSAGE_MARKER)
        assert found_in(base64.urlsafe_b64encode(prefix + MESSAGE_MARKER.encode()), MESSAGE_MARKER)
    assert found_in(json.dumps({"m": MESSAGE_MARKER}).encode(), MESSAGE_MARKER)
    assert found_in(json.dumps({"m": MESSAGE_MARKER}, ensure_ascii=False).encode(), MESSAGE_MARKER)
    assert not found_in(b"nothing here at all", MESSAGE_MARKER)


def sealed_frames(body: bytes) -> list[bytes]:
    """The sealed frames of a recorded reply stream, as the edge holds them."""
    import base64

    blocks = [block for block in body.decode("ascii").split("\n\n") if block.strip()]
    assert all(block.startswith("event: sealed\ndata: ") for block in blocks), blocks[:2]
    return [base64.urlsafe_b64decode(block.split("data: ", 1)[1] + "==") for block in blocks]


@pytest.mark.browser
@pytest.mark.model
def test_the_edge_sees_one_size_for_messages_searches_and_reply_frames_from_chromium(chain: Chain) -> None:
    """At the edge position, while Chromium uses the page: chat requests of 3 and 60 characters have
    bodies of one size, so do searches of 3 and 17 characters, and every frame of both replies is of
    a size from the documented set (docs/E2E.md, v2). The control: unpadded, the two messages' JSON
    differ by more than 57 bytes, so equal sizes are the padding's work, not chance."""
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    standin = chain.standin
    first_recorded = len(standin.forwarded)
    code = chain.server.pair_code()
    messages = ["Hi!", "Tell me one fact about lighthouses and the sea, in a sentence."[:60]]
    assert [len(m) for m in messages] == [3, 60]
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright, chain)
        try:
            page = signed_in_and_paired(browser, chain, code)
            for number, message in enumerate(messages, start=1):
                page.fill("#message-input", message)
                page.keyboard.press("Enter")
                replies = page.locator('.message[data-role="assistant"]')
                expect(replies).to_have_count(number, timeout=90_000)
                expect(replies.last).to_have_attribute("data-status", "complete", timeout=90_000)
            for query in ("sea", "lighthouse keeper"):
                assert len(query) in (3, 17)
                searched = sum(1 for f in standin.forwarded if f.target == "/api/search")
                page.fill("#search-box", query)
                expect(page.locator("#search-results")).to_be_visible(timeout=20_000)
                # Each query's own request crossed the edge (the box waits for a pause in typing).
                deadline = time.monotonic() + 20
                while sum(1 for f in standin.forwarded if f.target == "/api/search") == searched:
                    assert time.monotonic() < deadline, f"no search request for {query!r}"
                    page.wait_for_timeout(50)
            screenshot(page, "tunnel-path-5-shape")
        finally:
            browser.close()
    exchanges = standin.forwarded[first_recorded:]
    chats = [item for item in exchanges if (item.method, item.target) == ("POST", "/api/chat")]
    searches = [item for item in exchanges if (item.method, item.target) == ("POST", "/api/search")]
    assert len(chats) == 2 and len(searches) >= 2, [(f.method, f.target) for f in exchanges]
    assert {len(item.body) for item in chats} == {1024}, [len(item.body) for item in chats]
    assert {len(item.body) for item in searches} == {1024}, [len(item.body) for item in searches]
    assert len(json.dumps({"message": messages[1]})) - len(json.dumps({"message": messages[0]})) >= 57  # the control
    for item in chats:
        frames = sealed_frames(bytes(item.response_body))
        assert len(frames) >= 2 and {len(frame) for frame in frames} <= set(FRAME_SIZES), [len(f) for f in frames]


@pytest.mark.browser
@pytest.mark.model
def test_the_edge_sees_only_ciphertext_while_chromium_uses_the_page(chain: Chain, tmp_path: Path) -> None:
    """Everything that crosses the edge position, both ways, while Chromium pairs, chats, renames,
    changes the system prompt, exports and imports: no marker, no reply text, no title and no
    system prompt in any form. The control: a plain request with a marker, sent through the same
    recorder, is refused by the server, and the same scan finds its marker."""
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    standin = chain.standin
    first_recorded = len(standin.forwarded)
    code = chain.server.pair_code()
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright, chain)
        try:
            context = browser.new_context(accept_downloads=True)
            page = context.new_page()
            page.goto(chain.site_origin + "/chat/")
            page.wait_for_selector("#status[data-state=access]", timeout=20_000)
            sign_in_through_the_button(context, page, "#access-signin", chain)
            page.fill("#pair-code", code)
            page.fill("#device-name", DEVICE_MARKER)
            page.click("#pair-button")
            page.wait_for_selector("#status[data-state=ready]", timeout=30_000)

            # A message with a marker; the reply streams back and is read off the screen.
            page.fill("#message-input", f"Repeat this word exactly: {MESSAGE_MARKER}")
            page.keyboard.press("Enter")
            reply = page.locator('.message[data-role="assistant"]').last
            expect(reply).to_have_attribute("data-status", "complete", timeout=90_000)
            reply_text = reply.locator(".message-body").inner_text()

            # Rename the conversation.
            item = page.locator(".conversation-item").first
            item.locator(".conversation-rename").click()
            page.fill(".rename-box", TITLE_MARKER)
            page.keyboard.press("Enter")
            expect(page.locator(".conversation-item").first).to_contain_text(TITLE_MARKER, timeout=20_000)

            # Change the system prompt.
            page.click("#settings-button")
            expect(page.locator("#setting-max-tokens")).not_to_have_value("")  # loaded from the server
            page.fill("#setting-system-prompt", SYSTEM_MARKER)
            page.click("#settings-save")
            expect(page.locator("#settings-status")).to_have_text("Saved.", timeout=20_000)
            page.locator("#settings-dialog button[value=close]").click()

            # Export, then import a file with one more conversation.
            with page.expect_download() as download_info:
                page.click("#export-json")
            exported = json.loads(Path(download_info.value.path()).read_text(encoding="utf-8"))
            assert any(c["title"] == TITLE_MARKER for c in exported["conversations"])
            now = time.time()
            exported["conversations"].append({"id": "capture-import", "title": IMPORT_MARKER, "created_at": now, "updated_at": now,
                                              "messages": [{"id": "capture-import-u", "role": "user", "content": IMPORT_MARKER,
                                                            "status": "complete", "created_at": now}]})
            page.set_input_files("#import-file", files=[{"name": "export.json", "mimeType": "application/json",
                                                         "buffer": json.dumps(exported).encode()}])
            expect(page.locator("#sidebar-message")).to_contain_text("Imported 1 conversations", timeout=20_000)
            screenshot(page, "tunnel-path-4-after-capture")
        finally:
            browser.close()

    # The control, through the same recorder: a plain (unsealed) request with a marker.
    control = chain.via_edge(TestDevice()).request("POST", "/api/chat", json_body={"message": CONTROL_MARKER}, seal=False)
    assert control.status_code in (400, 401), control.text  # refused: never sealed, never a device

    exchanges = standin.forwarded[first_recorded:]
    capture = b"\n".join(item.wire_bytes() for item in exchanges)
    paths = {(item.method, item.target.split("?", 1)[0]) for item in exchanges}
    assert {("POST", "/api/auth/device"), ("POST", "/api/chat"), ("PUT", "/api/settings"),
            ("GET", "/api/history/export"), ("POST", "/api/history/import")} <= paths, paths
    assert any(method == "PATCH" for method, _ in paths), paths  # the rename
    assert len(reply_text.strip()) >= 8, reply_text
    assert found_in(capture, CONTROL_MARKER), "the scan missed a marker that did cross the edge in the clear"
    secrets = [MESSAGE_MARKER, SYSTEM_MARKER, TITLE_MARKER, IMPORT_MARKER, DEVICE_MARKER, code.replace("-", ""), code]
    window = 24
    reply_pieces = [reply_text[i: i + window] for i in range(0, max(1, len(reply_text) - window + 1), window)]
    leaks = {text: found_in(capture, text) for text in secrets + [p for p in reply_pieces if p.strip()]}
    assert not any(leaks.values()), {text: forms for text, forms in leaks.items() if forms}
    for item in exchanges:
        if item.status == 200 and item.target.startswith("/api/") and not item.target.startswith("/api/health"):
            assert ("Privchat-E2E-Nonce" in dict(item.response_headers)
                    or "privchat-e2e-nonce" in {k.lower() for k, _ in item.response_headers}), item.target
