"""The privchat app in this process, reached through Quart's test client: no subprocess, no socket.

For tests of what the app decides (the gate, CORS, rate limits, error shapes), this is the same app
``privchat serve`` hands to Hypercorn (``create_app`` with an open ``Database``, started and stopped
through its ``before_serving``/``after_serving`` hooks), so a request answered here is answered by
the same code. What it leaves out is the process around it: binding, restarts, signals, the CLI
next to a running server. Those tests keep ``LiveServer`` (tests/support/server.py).

Requests are sent with httpx through a transport that hands each one to Quart's test client, so
``SignedClient`` (and TestDevice's signer) work unchanged, and a test reads the same
``httpx.Response`` it read from a live server. Which listening socket a request "arrived on" is set
in the ASGI scope (``server``), as Hypercorn sets it: the gate tells the local port from the tunnel
port by it alone (``arrived_through_tunnel`` in api/gate.py).

The app runs on its own event loop in a thread, so tests stay plain functions and several threads
can send requests at once (they interleave on the app's loop as they would under Hypercorn).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Callable, Coroutine, Iterator, Literal, TypeVar

import httpx

from privchat.app import create_app
from privchat.config import config_from_dict
from privchat.storage.db import Database

from .server import SignedClient
from .signing import TestDevice

T = TypeVar("T")
Listener = Literal["local", "tunnel"]
PEER = ("127.0.0.1", 50_000)  # what cloudflared or a local browser looks like to the app: a loopback peer


def inprocess_config(folder: Path, overrides: dict[str, Any] | None = None) -> Any:
    """The config a test app runs with: model off, storage and key file under ``folder``, generous limits."""
    raw: dict[str, Any] = {
        "model": {"enabled": False},
        "storage": {"data_dir": str(folder / "data"), "key_file": str(folder / "keys" / "privchat.key")},
        "rate_limits": {"signed_per_minute": 100_000, "chat_per_minute": 100_000, "registration_per_minute": 1000},
    }
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    return config_from_dict(raw, config_dir=folder)


async def app_with_device(folder: Path, overrides: dict[str, Any] | None = None, *,
                          name: str = "test device") -> tuple[Any, Database, TestDevice]:
    """``create_app`` on a database freshly opened under ``folder`` (config: ``inprocess_config``), and
    one device written straight into that database, as pairing leaves it: for tests and benchmarks that
    drive the app below HTTP (its test client, a request context). Not started: the caller starts it
    (``app.test_app()``) if it needs to, and closes the database."""
    config = inprocess_config(folder, overrides)
    database = await Database.open(config)
    app = create_app(config, database=database)
    device = TestDevice(name=name)
    async with database.transaction() as conn:
        await app.extensions["privchat"].devices.add(conn, device.device_id, name, device.public_jwk)
    return app, database, device


class LoopThread:
    """An event loop running in a daemon thread; ``run`` waits for a coroutine on it from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="inprocess-app", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class QuartTransport(httpx.BaseTransport):
    """An httpx transport that hands each request to the app's test client, as if on ``port``."""

    def __init__(self, server: "InProcessServer", port: int) -> None:
        self.server, self.port = server, port

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        status, headers, content = self.server.run(self._send(request, body))
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def _send(self, request: httpx.Request, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        raw_path = request.url.raw_path.split(b"?", 1)[0]
        client = self.server.app.test_client(use_cookies=False)
        response = await client.open(
            request.url.raw_path.decode("ascii"),
            method=request.method,
            headers=list(request.headers.multi_items()),
            data=body,
            # As Hypercorn fills them: the listening socket (the gate's trust decision), the peer
            # (the local-port rate-limit bucket) and the path exactly as sent (the signature base).
            scope_base={"server": ("127.0.0.1", self.port), "client": PEER, "raw_path": raw_path},
        )
        content = await response.get_data()
        return response.status_code, list(response.headers.items()), content


class InProcessSignedClient(SignedClient):
    """``SignedClient`` with its requests sent to an in-process app: the same signing and request building.

    It sets the attributes ``SignedClient.__init__`` sets instead of calling it, which would build an
    httpx client for the network (and its TLS context, 25 ms each) only for it to be thrown away.
    """

    def __init__(self, server: "InProcessServer", device: TestDevice, *, host: str | None = None,
                 extra_headers: dict[str, str] | None = None, listener: Listener = "local") -> None:
        self.base_url = server.base_url(listener)
        self.device = device
        self.http = server.new_http(listener)
        self.host = host
        self.extra_headers = extra_headers or {}
        self._server_key = None


class InProcessServer:
    """One app with its own database, started like ``privchat serve`` starts it, minus the sockets.

    Mirrors the parts of ``LiveServer`` tests use: ``port``/``tunnel_port``, ``pair_code``, ``pair``;
    ``http(listener)`` is the httpx client for "a request arriving on that port".
    """

    def __init__(self, folder: Path, overrides: dict[str, Any] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.config = inprocess_config(folder, overrides)
        self.loop: LoopThread | None = None
        self.app: Any = None
        self._test_app: Any = None
        self._http: dict[str, httpx.Client] = {}

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "InProcessServer":
        self.loop = LoopThread()
        try:
            self.run(self._start())
        except BaseException:
            self.loop.close()
            self.loop = None
            raise
        return self

    async def _start(self) -> None:
        database = await Database.open(self.config)
        self.app = create_app(self.config, database=database)
        self._test_app = self.app.test_app()
        await self._test_app.startup()  # the app's before_serving hooks, as Hypercorn's lifespan runs them

    def stop(self) -> None:
        for client in self._http.values():
            client.close()
        self._http.clear()
        if self.loop is None:
            return
        try:
            if self._test_app is not None:
                self.run(self._test_app.shutdown())  # after_serving: generations, engine, database closed
        finally:
            self.loop.close()
            self.loop = None

    def __enter__(self) -> "InProcessServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine on the app's loop (where its database connection lives) and wait for it."""
        assert self.loop is not None, "the in-process server is not started"
        return self.loop.run(coro, timeout)

    # --- where requests arrive -------------------------------------------------------------------

    @property
    def state(self) -> Any:
        return self.app.extensions["privchat"]

    @property
    def port(self) -> int:
        return self.config.port

    @property
    def tunnel_port(self) -> int:
        return self.config.tunnel_port

    def listener_port(self, listener: Listener) -> int:
        return {"local": self.port, "tunnel": self.tunnel_port}[listener]

    def base_url(self, listener: Listener = "local") -> str:
        """What the Host header says by default: the loopback address and port of that listener."""
        return f"http://127.0.0.1:{self.listener_port(listener)}"

    def new_http(self, listener: Listener = "local") -> httpx.Client:
        return httpx.Client(base_url=self.base_url(listener), timeout=60, transport=QuartTransport(self, self.listener_port(listener)))

    def http(self, listener: Listener = "local") -> httpx.Client:
        """An httpx client whose requests arrive on the local port, or on the tunnel port."""
        if listener not in self._http:
            self._http[listener] = self.new_http(listener)
        return self._http[listener]

    def client(self, device: TestDevice, *, host: str | None = None, extra_headers: dict[str, str] | None = None,
               listener: Listener = "local") -> SignedClient:
        """``SignedClient`` (every request signed by ``device``) whose requests arrive on ``listener``."""
        return InProcessSignedClient(self, device, host=host, extra_headers=extra_headers, listener=listener)

    # --- owner actions, as the CLI does them ------------------------------------------------------

    def pair_code(self) -> str:
        """A pairing code, made by the app's own PairingStore (what `privchat pair` does)."""
        return self.run(self.state.pairing.create()).code

    def pair(self, device: TestDevice | None = None, name: str = "test device") -> SignedClient:
        """Pair a new device over the local port, exactly as the page does, and return its client."""
        device = device or TestDevice(name=name)
        client = self.client(device)
        response = client.register(self.pair_code(), name)
        assert response.status_code == 201, response.text
        return client

    def revoke(self, device_id: str) -> None:
        """Revoke a device in the database (what `privchat devices revoke` does)."""
        self.run(self.state.devices.revoke(device_id))


def started(folder: Path, overrides: dict[str, Any] | None = None) -> Iterator[InProcessServer]:
    """For fixtures: ``yield from started(folder)`` gives a started server and stops it afterwards."""
    server = InProcessServer(folder, overrides).start()
    try:
        yield server
    finally:
        server.stop()


def factory(folder: Path) -> Iterator[Callable[..., InProcessServer]]:
    """For fixtures: ``yield from factory(tmp_path)`` gives ``make(overrides, name=...)``; all are stopped afterwards."""
    made: list[InProcessServer] = []

    def make(overrides: dict[str, Any] | None = None, *, name: str = "app") -> InProcessServer:
        server = InProcessServer(folder / name, overrides).start()
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.stop()
