"""Load: 30 paired devices at once, rate limits, and memory that does not grow with traffic.

The model decodes one reply at a time with a bounded queue (model.queue_size), so under load some
chats are refused with 503 queue_full and a Retry-After: that is the designed answer. Anything else
in the 5xx range is a failure.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import httpx

from privchat.auth.pairing import PairingStore
from privchat.config import load_config
from privchat.storage.db import Database
from tests.support.e2e import OpenedResponse, SealedExchange, ServerKey, open_events
from tests.support.server import LiveServer, SignedClient, parse_sse
from tests.support.signing import TestDevice

CLIENTS = 30
REQUESTS_PER_CLIENT = 6
ALLOWED_503 = {"queue_full", "model_loading", "model_unavailable"}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def pairing_codes(server: LiveServer, count: int) -> list[str]:
    """What `privchat pair` does (PairingStore.create on its own connection), without 30 process start-ups."""
    async def make() -> list[str]:
        config = load_config(server.config_path)
        database = await Database.open(config)
        try:
            auth = config.auth
            store = PairingStore(database, auth["pairing_code_ttl_seconds"], auth["pairing_max_attempts"])
            return [(await store.create()).code for _ in range(count)]
        finally:
            await database.close()
    return asyncio.run(make())


class AsyncDevice:
    """A device sending sealed, signed requests (as SignedClient does) from an asyncio client."""

    def __init__(self, http: httpx.AsyncClient, device: TestDevice, server_key: ServerKey) -> None:
        self.http, self.device, self.server_key = http, device, server_key

    def _build(self, method: str, path: str, body: Any = None) -> tuple[httpx.Request, SealedExchange]:
        raw = b"" if body is None else json.dumps(body).encode()
        exchange = SealedExchange(self.server_key, method, path, self.device.device_id, raw)
        headers = exchange.signed_headers(self.device, method, path)
        return self.http.build_request(method, path, content=exchange.sealed_body, headers=headers), exchange

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        request, exchange = self._build(method, path, body)
        response = await self.http.send(request)
        return OpenedResponse(response, exchange.opener(response), stream=False)

    async def chat(self, message: str, max_tokens: int) -> tuple[Any, list[tuple[str, Any]]]:
        request, exchange = self._build("POST", "/api/chat", {"message": message, "options": {"max_tokens": max_tokens}})
        response = await self.http.send(request, stream=True)
        try:
            if response.status_code != 200:
                await response.aread()
                return OpenedResponse(response, exchange.opener(response), stream=False), []
            text = "".join([chunk async for chunk in response.aiter_text()])
            return response, list(parse_sse(open_events(exchange.opener(response), iter([text]))))
        finally:
            await response.aclose()


def check(response: httpx.Response, what: str, problems: list[str]) -> None:
    status = response.status_code
    if status == 503:
        code = response.json()["error"]["code"]
        if code not in ALLOWED_503:
            problems.append(f"{what}: 503 {code}")
        elif not response.headers.get("Retry-After", "").isdigit():
            problems.append(f"{what}: 503 {code} without Retry-After")
    elif status >= 300:
        problems.append(f"{what}: {status} {response.text[:200]}")


async def one_client(base_url: str, device: TestDevice, index: int, problems: list[str], tally: dict[str, int]) -> None:
    rng = random.Random(index)
    async with httpx.AsyncClient(base_url=base_url, timeout=90) as http:
        client = AsyncDevice(http, device, ServerKey.from_health((await http.get("/api/health")).json()))
        plan = ["health", "history", "settings_get", "settings_put", "chat", rng.choice(["history", "settings_get", "health"])]
        rng.shuffle(plan)
        for step in plan[:REQUESTS_PER_CLIENT]:
            if step == "health":
                response = await http.get("/api/health")
            elif step == "history":
                response = await client.call("GET", f"/api/history?limit={rng.randint(1, 50)}")
            elif step == "settings_get":
                response = await client.call("GET", "/api/settings")
            elif step == "settings_put":
                response = await client.call("PUT", "/api/settings", {"temperature": round(rng.uniform(0, 1), 2)})
            else:
                response, events = await client.chat(f"Say a word, client {index}.", rng.randint(4, 8))
                if response.status_code == 200:
                    last = events[-1] if events else ("none", None)
                    tally["chat_done" if last[0] == "done" else "chat_bad"] += 1
                    if last[0] != "done":
                        problems.append(f"chat {index}: stream ended with {last}")
                elif response.status_code == 503:
                    tally["chat_503"] += 1
            check(response, f"{step} by client {index}", problems)
            tally["requests"] += 1


def test_thirty_devices_at_once(server_factory) -> None:
    server = server_factory(name="load")
    codes = pairing_codes(server, CLIENTS)
    devices = [TestDevice(name=f"load {i}") for i in range(CLIENTS)]
    for device, code in zip(devices, codes):
        assert SignedClient(server.url, device).register(code, device.name).status_code == 201

    async def warm_up() -> None:  # every code path once, so lazy imports and caches are in the baseline
        problems: list[str] = []
        tally = {"requests": 0, "chat_done": 0, "chat_bad": 0, "chat_503": 0}
        await one_client(server.url, devices[0], 0, problems, tally)
        assert not problems and tally["chat_done"] == 1, (problems, tally)

    asyncio.run(warm_up())
    baseline = rss_kib(server.process.pid)

    problems: list[str] = []
    tally = {"requests": 0, "chat_done": 0, "chat_bad": 0, "chat_503": 0}

    async def load() -> None:
        await asyncio.wait_for(asyncio.gather(*(one_client(server.url, d, i, problems, tally) for i, d in enumerate(devices))),
                               timeout=150)

    started = time.monotonic()
    asyncio.run(load())
    elapsed = time.monotonic() - started
    assert not problems, problems[:10]
    assert tally["requests"] == CLIENTS * REQUESTS_PER_CLIENT
    assert tally["chat_done"] >= 1 and tally["chat_done"] + tally["chat_503"] == CLIENTS, tally
    assert server.process.poll() is None
    after = rss_kib(server.process.pid)
    assert after - baseline < 150 * 1024, f"RSS grew from {baseline} KiB to {after} KiB under load ({elapsed:.1f}s, {tally})"
    # Still serving normally afterwards.
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/api/health").json()["model"]["state"] == "ready"


def test_low_rate_limits_answer_429_with_retry_after(server_factory) -> None:
    server = server_factory({"model": {"enabled": False}, "rate_limits": {"signed_per_minute": 5}}, name="limited")
    client = server.pair()
    other = server.pair(name="other device")
    statuses = []
    limited = None
    for _ in range(12):
        response = client.get("/api/settings")
        statuses.append(response.status_code)
        if response.status_code == 429:
            limited = response
    assert limited is not None, statuses
    assert set(statuses) == {200, 429} and statuses.index(429) <= 6, statuses
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    # The limit is per device, and health is never limited.
    assert other.get("/api/settings").status_code == 200
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert all(http.get("/api/health").status_code == 200 for _ in range(10))
