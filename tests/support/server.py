"""A real privchat server in a subprocess, with its own config, data folder and key file.

Tests talk to it over loopback HTTP exactly as the page does; nothing of the server is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml

from privchat.e2e.suite import SEALED_MEDIA_TYPE

from .e2e import OpenedResponse, SealError, SealedExchange, ServerKey, code_mac, sse_blocks
from .signing import TestDevice

REPO = Path(__file__).resolve().parents[2]
PRIVCHAT = [sys.executable, "-m", "privchat"]
# Set by `scripts/test --fast`: a test that would start a live server skips instead (conftest.py
# also marks every test whose fixtures start one as `live`, so -m "not live" leaves them out).
NO_LIVE = "PRIVCHAT_TESTS_NO_LIVE"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: all held open until each is known, so two calls in a row
    cannot return the same one (they did, one at a time, and the server then refused to start)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def write_config(folder: Path, overrides: dict[str, Any] | None = None, port: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    server_port, tunnel_port = free_ports(2)
    config: dict[str, Any] = {
        "server": {"port": port or server_port},
        "tunnel": {"port": tunnel_port if tunnel_port != port else free_ports(2)[1]},  # listened on only when access is configured
        "storage": {"data_dir": str(folder / "data"), "key_file": str(folder / "keys" / "privchat.key")},
        "rate_limits": {"signed_per_minute": 100_000, "chat_per_minute": 100_000, "registration_per_minute": 1000},
    }
    for section, values in (overrides or {}).items():
        config.setdefault(section, {}).update(values)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_cli(config_path: Path, *args: str, input: str | None = None, timeout: float = 60, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*PRIVCHAT, "--config", str(config_path), *args], capture_output=True, text=True,
                            input=input, timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO)
    if check and result.returncode != 0:
        raise AssertionError(f"privchat {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class LiveServer:
    folder: Path
    config_path: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.folder / "server.log"

    @property
    def config(self) -> dict[str, Any]:
        return yaml.safe_load(self.config_path.read_text())

    @property
    def port(self) -> int:
        return int(self.config["server"]["port"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tunnel_port(self) -> int:
        return int(self.config["tunnel"]["port"])

    @property
    def tunnel_url(self) -> str:
        """The tunnel listener (only with access configured): what cloudflared's rule points at."""
        return f"http://127.0.0.1:{self.tunnel_port}"

    def start(self, *, wait_for: str | None = "ready", timeout: float = 60, env: dict[str, str] | None = None) -> "LiveServer":
        if os.environ.get(NO_LIVE):
            pytest.skip(f"starts a live server; {NO_LIVE} is set (scripts/test --fast)")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([*PRIVCHAT, "--config", str(self.config_path), "serve"], stdout=log,
                                        stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                health = httpx.get(self.url + "/api/health", timeout=2).json()
            except (httpx.HTTPError, ValueError):
                time.sleep(0.1)
                continue
            if wait_for is None or health["model"]["state"] in (wait_for, "error", "disabled"):
                return self
            time.sleep(0.1)
        raise AssertionError(f"server did not become {wait_for} in {timeout}s:\n{self.log()}")

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url + "/api/health", timeout=5).json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def cli(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run_cli(self.config_path, *args, **kwargs)

    def pair_code(self) -> str:
        return json.loads(self.cli("pair", "--json").stdout)["code"]

    def pair(self, device: TestDevice | None = None, name: str = "test device") -> "SignedClient":
        device = device or TestDevice(name=name)
        client = SignedClient(self.url, device)
        response = client.register(self.pair_code(), name)
        assert response.status_code == 201, response.text
        return client


def started_live(folder: Path, overrides: dict[str, Any] | None = None, **start: Any) -> Iterator[LiveServer]:
    """For fixtures: ``yield from started_live(folder, overrides)`` gives a live server with that config,
    started (``start``: ``LiveServer.start``'s arguments), and stops it afterwards."""
    server = LiveServer(folder, write_config(folder, overrides)).start(**start)
    try:
        yield server
    finally:
        server.stop()


class SignedClient:
    """httpx with every request signed by ``device``: the page's behaviour, in Python."""

    def __init__(self, base_url: str, device: TestDevice, *, host: str | None = None, extra_headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.device = device
        self.http = httpx.Client(base_url=base_url, timeout=60)
        self.host = host
        self.extra_headers = extra_headers or {}
        self._server_key: ServerKey | None = None

    def server_key(self, refresh: bool = False) -> ServerKey:
        """The server's E2E key from health (what the page pins at pairing), fetched once."""
        if self._server_key is None or refresh:
            headers = {**self.extra_headers, **({"Host": self.host} if self.host else {})}
            response = self.http.get("/api/health", headers=headers)
            if response.status_code != 200:
                # The gate refuses this client (no Access token, a foreign Host…): its requests are
                # sealed to a throwaway key and refused before anything is opened, as they must be.
                return ServerKey.throwaway()
            self._server_key = ServerKey.from_health(response.json())
        return self._server_key

    def request(self, method: str, path: str, *, json_body: Any = None, body: bytes | None = None,
                sign: dict[str, Any] | None = None, headers: dict[str, str] | None = None, stream: bool = False,
                seal: bool = True, server_key: ServerKey | None = None) -> Any:
        """A signed request, sealed to the server key (``seal=False`` sends it plain, which the
        server must refuse); the answer is an ``OpenedResponse`` that reads as plaintext."""
        raw = body if body is not None else (json.dumps(json_body).encode() if json_body is not None else b"")
        all_headers = {**self.extra_headers, **(headers or {})}
        exchange = None
        sign_args = dict(sign or {})
        if seal:
            exchange = SealedExchange(server_key or self.server_key(), method, path,
                                      sign_args.get("key_id") or self.device.device_id, raw)
            raw = exchange.sealed_body
            sign_args["e2e"] = exchange.header
            if raw:
                all_headers.setdefault("Content-Type", SEALED_MEDIA_TYPE)
        elif raw or json_body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        if self.host:
            all_headers["Host"] = self.host
        all_headers.update(self.device.sign(method, path, raw, **sign_args))
        request = self.http.build_request(method, path, content=raw, headers=all_headers)
        response = self.http.send(request, stream=stream)
        if exchange is None:
            return response
        return OpenedResponse(response, exchange.opener(response), stream=stream)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json_body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, json_body=json_body, **kwargs)

    def put(self, path: str, json_body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, json_body=json_body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def register(self, code: str, name: str = "test device", **kwargs: Any) -> Any:
        """Pair with a code as the page does: prove the code (never send it) and check the answer's
        key confirmation, both bound to the server key this request is sealed to."""
        kid = (kwargs.get("server_key") or self.server_key()).kid
        proof = code_mac(b"privchat pairing proof v1", code, self.device.device_id, kid)
        response = self.post("/api/auth/device", {"pairing_proof": proof, "public_key": self.device.public_jwk, "name": name},
                             **kwargs)
        if response.status_code == 201:
            expected = code_mac(b"privchat pairing confirm v1", code, self.device.device_id, kid)
            if response.json().get("key_confirmation") != expected:
                raise SealError("e2e_key_mismatch", "the key confirmation does not match the key this device sealed to")
        return response

    def register_typed(self, code: str, name: str = "test device", **kwargs: Any) -> Any:
        """Pair with a typed code as the page does (docs/E2E.md, "Pairing"): an OPAQUE login with the
        code as its password (the client half through opaquepy), then the registration bound to its
        session key. Returns the registration's answer; a code the login refuses raises SealError
        with ``pairing_invalid`` before anything more is sent, as the page stops there."""
        from opaquepy import lib as opaque

        kid = (kwargs.get("server_key") or self.server_key()).kid
        first, state = opaque.login_client(normalised_code(code))
        started = self.post("/api/auth/pairing", {"request": first, "public_key": self.device.public_jwk}, **kwargs)
        if started.status_code != 200:
            return started
        try:
            finalization, session_key = opaque.login_client_finish(state, normalised_code(code), started.json()["response"])
        except ValueError as exc:
            raise SealError("pairing_invalid", "the login did not finish: a wrong code, or not this server") from exc
        body = {"pairing_id": started.json()["pairing_id"], "finalization": finalization,
                "device_proof": session_mac(b"privchat pairing device v2", session_key, self.device.device_id, kid),
                "public_key": self.device.public_jwk, "name": name}
        response = self.post("/api/auth/device", body, **kwargs)
        if response.status_code == 201:
            expected = session_mac(b"privchat pairing confirm v2", session_key, self.device.device_id, kid)
            if response.json().get("key_confirmation") != expected:
                raise SealError("e2e_key_mismatch", "the key confirmation does not match the key this device sealed to")
        return response

    def chat(self, message: str, conversation_id: str | None = None, **options: Any) -> list[tuple[str, Any]]:
        """Send a message and read the whole event stream: [(event, data), ...]."""
        body: dict[str, Any] = {"message": message}
        if conversation_id:
            body["conversation_id"] = conversation_id
        if options:
            body["options"] = options
        response = self.request("POST", "/api/chat", json_body=body, stream=True)
        try:
            if response.status_code != 200:
                response.read()
                raise AssertionError(f"chat answered {response.status_code}: {response.text}")
            return list(parse_sse(response.iter_text()))
        finally:
            response.close()


class BackgroundStream:
    """A chat reply read in a thread, so a test can do other things while it streams."""

    def __init__(self, client: SignedClient, body: dict[str, Any]) -> None:
        self.events: list[tuple[str, Any]] = []
        self.streaming = threading.Event()  # set at the first token (or when the stream ends)
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(client, body), daemon=True)
        self.thread.start()

    def _read(self, client: SignedClient, body: dict[str, Any]) -> None:
        response = client.request("POST", "/api/chat", json_body=body, stream=True)
        try:
            for event in parse_sse(response.iter_text()):
                self.events.append(event)
                if event[0] == "token":
                    self.streaming.set()
                if event[0] in ("done", "error"):
                    break
        finally:
            response.close()
            self.streaming.set()
            self.finished.set()

    def join(self, timeout: float = 60) -> list[tuple[str, Any]]:
        self.thread.join(timeout)
        return self.events


def normalised_code(code: str) -> str:
    """docs/E2E.md: upper case, without - and spaces, O->0, I and L->1."""
    return code.strip().upper().replace("-", "").replace(" ", "").translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))


def session_mac(label: bytes, session_key: str, device_id: str, kid: str) -> str:
    """The typed-code pairing's HMACs, keyed by the OPAQUE session key (docs/E2E.md)."""
    import base64
    import hashlib
    import hmac

    key = base64.urlsafe_b64decode(session_key + "=" * (-len(session_key) % 4))
    mac = hmac.new(key, b"\x00".join((label, device_id.encode(), kid.encode())), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def parse_sse_with_ids(chunks: Any) -> Iterator[tuple[str | None, str, Any]]:
    """A small SSE reader for tests: yields (id, event, data), the id None when the event has none,
    and (None, 'ping', None) for a comment."""
    for block in sse_blocks(chunks):
        event, data_lines, event_id = "message", [], None
        for line in block.split("\n"):
            if line.startswith(":"):
                yield (None, "ping", None)
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data_lines.append(line[5:].lstrip())
        if data_lines:
            yield (event_id, event, json.loads("\n".join(data_lines)))


def parse_sse(chunks: Any) -> Iterator[tuple[str, Any]]:
    """(event, data) of each event, and ('ping', None) for comments: parse_sse_with_ids without the ids."""
    for _id, event, data in parse_sse_with_ids(chunks):
        yield (event, data)
