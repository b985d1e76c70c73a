"""The whole path through a stand-in for the edge (cloudflared + Cloudflare Access), issue #5.

The page is served as www.standin.test and calls the API as chat-api.standin.test, both mapped to
loopback inside Chromium: same site, as example.com and chat-api.example.com are in production, so
the Access session cookie rides along on the page's fetches, and the API origin is not a loopback
one, so the page has to tell "Access wants a sign-in" apart from "server not running" the way it
must on a phone. The backend checks the stand-in's JWT itself; requests that skip the stand-in but
claim the public hostname are refused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, SiteServer, screenshot, site_copy
from tests.support.edge import ACCESS_HEADER, COOKIE, EdgeStandIn
from tests.support.server import LiveServer, SignedClient, free_port, parse_sse, write_config
from tests.support.signing import TestDevice

PUBLIC_HOST = "chat-api.standin.test"
SITE_HOST = "www.standin.test"


class Edge:
    def __init__(self, standin: EdgeStandIn, server: LiveServer, site: SiteServer, site_origin: str) -> None:
        self.standin, self.server, self.site, self.site_origin = standin, server, site, site_origin

    def via_edge(self, device: TestDevice) -> SignedClient:
        """A client that signed in to Access (has the session cookie) and calls the API through the edge."""
        return SignedClient(self.standin.url, device, extra_headers={"Cookie": f"{COOKIE}={self.standin.mint()}"})

    def direct(self, device: TestDevice, access_token: str | None) -> SignedClient:
        """A client that skips the edge: straight to the backend port, claiming the public hostname."""
        headers = {ACCESS_HEADER: access_token} if access_token is not None else {}
        return SignedClient(self.server.url, device, host=PUBLIC_HOST, extra_headers=headers)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    folder: Path = tmp_path_factory.mktemp("edge")
    backend_port, site_port = free_port(), free_port()
    standin = EdgeStandIn(f"http://127.0.0.1:{backend_port}", public_hostname=PUBLIC_HOST).start()
    site_origin = f"http://{SITE_HOST}:{site_port}"
    config = write_config(folder, {
        "server": {"allowed_origins": [site_origin]},
        "site": {"url": site_origin, "api_origin": standin.public_origin},
        "access": {"team_domain": standin.team_domain, "aud": [standin.aud], "public_hostnames": [PUBLIC_HOST],
                   "certs_url": standin.jwks_url},
    }, port=backend_port)
    server = site = None
    try:
        server = LiveServer(folder, config).start()
        site = SiteServer(site_copy(folder, standin.public_origin), site_port).start()
        yield Edge(standin, server, site, site_origin)
    finally:
        if site:
            site.stop()
        if server:
            server.stop()
        standin.stop()


def error_code(response: httpx.Response) -> tuple[int, str, str]:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return response.status_code, "", response.text[:200]
    return response.status_code, error["code"], error["message"]


# --- the stand-in itself behaves like Access ----------------------------------------------------------

def test_standin_without_session_acts_like_access(edge: Edge) -> None:
    standin, before = edge.standin, edge.standin.forwarded_count
    origin = {"Origin": edge.site_origin}
    refused = httpx.get(standin.url + "/api/health", headers=origin)
    assert refused.status_code == 302 and "/cdn-cgi/access/login?redirect_url=" in refused.headers["Location"]
    assert "Access-Control-Allow-Origin" not in refused.headers  # so a page's fetch fails as a CORS error
    expired = httpx.get(standin.url + "/api/health", headers={**origin, "Cookie": f"{COOKIE}={standin.expired_token()}"})
    assert expired.status_code == 302
    forged = httpx.get(standin.url + "/api/health", headers={**origin, "Cookie": f"{COOKIE}={standin.forged_token()}"})
    assert forged.status_code == 302
    assert standin.forwarded_count == before, "the stand-in let a request without a valid session through"
    # Preflights bypass Access and get the backend's CORS answer.
    preflight = httpx.request("OPTIONS", standin.url + "/api/chat", headers={
        **origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,signature"})
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["Access-Control-Allow-Origin"] == edge.site_origin
    assert standin.forwarded[-1].method == "OPTIONS" and standin.forwarded[-1].headers["Host"] == PUBLIC_HOST
    # The sign-in sets an HttpOnly session cookie and sends the browser back.
    login = httpx.get(standin.login_url(standin.url + "/api/health"))
    assert login.status_code == 302 and login.headers["Location"] == standin.url + "/api/health"
    assert login.cookies.get(COOKIE) and "HttpOnly" in login.headers["Set-Cookie"]
    with_session = httpx.get(standin.url + "/api/health", cookies={COOKIE: login.cookies[COOKIE]})
    assert with_session.status_code == 200 and with_session.json()["status"] == "ok"
    assert standin.certs_fetches >= 1, "the backend never fetched the stand-in's keys, so it checked no JWT"


# --- 1. the page, through the edge, in Chromium ---------------------------------------------------------

@pytest.mark.browser
@pytest.mark.model
def test_page_signs_in_pairs_and_chats_through_the_edge(edge: Edge) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    standin = edge.standin
    code = json.loads(edge.server.cli("pair", "--json").stdout)["code"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            *CHROMIUM_ARGS, *standin.chromium_args(),
            # http://www.standin.test stands in for an https site: WebCrypto and IndexedDB need a secure context.
            f"--unsafely-treat-insecure-origin-as-secure={edge.site_origin}"])
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(edge.site_origin + "/chat/")
            # No session cookie: the page must say "sign in", not "server down".
            page.wait_for_selector("#status[data-state=access]", timeout=20_000)
            assert page.is_visible("#access-signin")
            screenshot(page, "edge-standin-1-access-needed")

            # Trying to pair before signing in: the form offers the sign-in; nothing reached the backend.
            forwarded_before = standin.forwarded_count
            page.fill("#pair-code", code)
            page.click("#pair-button")
            page.wait_for_selector("#pair-error #pair-signin", timeout=20_000)
            assert "Access" in page.text_content("#pair-error")
            assert standin.forwarded_count == forwarded_before
            assert any(method == "GET" for method, _target, _status in standin.refused)

            # Sign in like the owner: the button opens the API in a new tab, Access sends it to its login.
            with context.expect_page() as opened:
                page.click("#pair-signin")
            tab = opened.value
            tab.wait_for_load_state()
            assert tab.url.startswith(standin.public_origin + "/api/"), tab.url
            assert '"status"' in tab.content()  # the tab ended on the API, past the login
            cookies = {c["name"]: c for c in context.cookies(standin.public_origin)}
            assert COOKIE in cookies and cookies[COOKIE]["httpOnly"]
            tab.close()

            page.bring_to_front()
            page.click("#pair-retry")
            page.wait_for_selector("#status[data-state=ready]", timeout=30_000)
            fingerprint = page.text_content("#fingerprint").strip()
            page.fill("#message-input", "Say hello in one short sentence.")
            page.keyboard.press("Enter")
            page.wait_for_selector('.message[data-role="assistant"][data-status="complete"]', timeout=60_000)
            reply = page.text_content('.message[data-role="assistant"]')
            assert reply and reply.strip()
            screenshot(page, "edge-standin-2-chat")

            # The Access session ends (it lasts hours, not forever): the page must ask for a sign-in
            # again, and the status bar's sign-in and Retry bring it back.
            context.clear_cookies()
            page.evaluate("window.dispatchEvent(new Event('focus'))")
            page.wait_for_selector("#status[data-state=access]", timeout=20_000)
            assert page.is_visible("#access-signin")
            screenshot(page, "edge-standin-3-session-ended")
            with context.expect_page() as opened:
                page.click("#access-signin")
            opened.value.wait_for_load_state()
            assert opened.value.url.startswith(standin.public_origin + "/api/"), opened.value.url
            opened.value.close()
            page.bring_to_front()
            page.click("#status-retry")
            page.wait_for_selector("#status[data-state=ready]", timeout=20_000)
        finally:
            browser.close()

    sent = [(f.method, urlpath(f.target), f.status) for f in standin.forwarded]
    assert ("POST", "/api/auth/device", 201) in sent
    assert ("POST", "/api/chat", 200) in sent
    assert any(method == "OPTIONS" for method, _path, _status in sent), "the signed requests' preflights did not pass"
    for item in standin.forwarded:
        assert item.headers["Host"] == PUBLIC_HOST
        assert (ACCESS_HEADER in item.headers) == (item.method != "OPTIONS")
    # The backend knows the device the page paired, and saw it on signed requests (last_seen) that came
    # in on the public hostname, which it only serves with a JWT it verified against the stand-in's keys.
    devices = json.loads(edge.server.cli("devices", "list", "--json").stdout)["devices"]
    paired = [d for d in devices if d["fingerprint"] == fingerprint]
    assert paired and paired[0]["status"] == "active" and paired[0]["last_seen_at"], devices
    assert standin.certs_fetches >= 1


def urlpath(target: str) -> str:
    return target.split("?", 1)[0]


# --- 2. skipping the edge while claiming the public hostname ---------------------------------------------

@pytest.fixture(scope="module")
def edge_device(edge: Edge) -> TestDevice:
    client = edge.via_edge(TestDevice(name="paired through the edge"))
    response = client.register(edge.server.pair_code(), "paired through the edge")
    assert response.status_code == 201, response.text
    assert edge.standin.forwarded[-1].target == "/api/auth/device"
    return client.device


@pytest.mark.parametrize("case", ["none", "forged_same_kid", "forged_new_kid", "expired", "wrong_aud"])
def test_direct_requests_for_the_public_host_are_refused(edge: Edge, edge_device: TestDevice, case: str) -> None:
    standin = edge.standin
    token, says = {
        "none": (None, "without a Cloudflare Access token"),
        "forged_same_kid": (standin.forged_token(same_kid=True), "InvalidSignatureError"),
        "forged_new_kid": (standin.forged_token(same_kid=False), "unknown key"),
        "expired": (standin.expired_token(), "expired"),
        "wrong_aud": (standin.wrong_aud_token(), "(aud)"),
    }[case]
    before = standin.forwarded_count
    status, code, message = error_code(edge.direct(edge_device, token).get("/api/auth/device"))
    assert (status, code) == (403, "access_denied"), message
    assert says in message, message
    assert standin.forwarded_count == before  # it really skipped the edge


def test_direct_request_with_a_valid_token_is_served(edge: Edge, edge_device: TestDevice) -> None:
    """The control for the refusals above: the same request, with the stand-in's JWT, passes."""
    response = edge.direct(edge_device, edge.standin.mint()).get("/api/auth/device")
    assert response.status_code == 200, response.text
    assert response.json()["device_id"] == edge_device.device_id


# --- 3. the stream is not buffered by the edge -----------------------------------------------------------

@pytest.mark.model
def test_stream_through_the_edge_arrives_token_by_token(edge: Edge, edge_device: TestDevice) -> None:
    client = edge.via_edge(edge_device)
    body = {"message": "Write a short story about a cat who learns to sail.", "options": {"max_tokens": 48, "temperature": 0}}
    response = client.request("POST", "/api/chat", json_body=body, stream=True)
    arrivals: list[tuple[float, str]] = []  # (time the event's last byte arrived, event)
    buffer = ""
    try:
        assert response.status_code == 200, response.read()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for chunk in response.iter_raw():
            now = time.monotonic()
            buffer += chunk.decode("utf-8")
            complete, _sep, buffer = buffer.rpartition("\n\n")
            if complete:
                arrivals.extend((now, event) for event, _data in parse_sse([complete + "\n\n"]) if event != "ping")
    finally:
        response.close()
    events = [event for _t, event in arrivals]
    assert events[0] == "start" and events[-1] == "done", events
    tokens = [t for t, event in arrivals if event == "token"]
    assert len(tokens) >= 8, f"only {len(tokens)} token events"
    gap = tokens[-1] - tokens[0]
    distinct_reads = len({round(t, 6) for t in tokens})
    assert gap >= 0.1, f"all {len(tokens)} tokens arrived within {gap * 1000:.0f} ms: the edge buffered the stream"
    # The server writes the tokens of one 30 ms window together, so a few tokens may share a read;
    # a buffering proxy would deliver them all in one or two.
    assert distinct_reads >= 3, f"{len(tokens)} tokens arrived in only {distinct_reads} reads"
    assert edge.standin.forwarded[-1].target == "/api/chat"
