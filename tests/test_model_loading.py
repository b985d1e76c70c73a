"""While the model loads, health says so at once and chat answers 503 model_loading with Retry-After."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.e2e import SealedExchange, ServerKey, open_events
from tests.support.inprocess import app_with_device


@pytest.mark.slow
async def test_chat_while_loading_is_503_then_works(tmp_path: Path) -> None:
    app, _database, device = await app_with_device(tmp_path, {"model": {"enabled": True}}, name="loader")
    state = app.extensions["privchat"]
    body = json.dumps({"message": "hello", "options": {"max_tokens": 4}}).encode()

    def sealed() -> SealedExchange:
        return SealedExchange(server_key, "POST", "/api/chat", device.device_id, body)

    async with app.test_app() as test_app:
        client = test_app.test_client()
        started = time.perf_counter()
        health = await client.get("/api/health")
        assert (await health.get_json())["model"]["state"] == "loading"
        assert time.perf_counter() - started < 0.1  # answered before the model is there
        server_key = ServerKey.from_health(await health.get_json())
        exchange = sealed()
        response = await client.post("/api/chat", data=exchange.sealed_body, headers=exchange.signed_headers(device, "POST", "/api/chat"))
        assert response.status_code == 503
        assert exchange.open_json(response, await response.get_data())["error"]["code"] == "model_loading"
        assert int(response.headers["Retry-After"]) > 0
        assert (await state.models.wait_loaded()).state == "ready"
        exchange = sealed()
        response = await client.post("/api/chat", data=exchange.sealed_body, headers=exchange.signed_headers(device, "POST", "/api/chat"))
        assert response.status_code == 200
        stream = (await response.get_data()).decode()
        assert "event: sealed" in stream and "event: done" in "".join(
            open_events(exchange.opener(response), iter([stream])))
