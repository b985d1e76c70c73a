"""Schemathesis against the live server's own OpenAPI document, every request signed as a paired device.

Checks: no 5xx (not_a_server_error) and every documented response matches its schema
(response_schema_conformance, content_type_conformance). Bounded: MAX_EXAMPLES per operation and
mode. Left out on purpose:
- POST /api/chat: it streams from the model (seconds per case); the streaming tests cover it.
- DELETE /api/history: it would empty the seeded history and make the other cases trivial.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from tests.support.e2e import SealedExchange, ServerKey, split_meta, unpad_body
from tests.support.server import LiveServer, SignedClient, write_config
from tests.support.signing import TestDevice

MAX_EXAMPLES = 20
EXCLUDED = {("POST", "/api/chat"), ("DELETE", "/api/history")}
# Invalid export files are big, nested documents: generating them is slow, so fewer of them.
FEWER = {("POST /api/history/import", GenerationMode.NEGATIVE): 6}
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("fuzz")
    # No model: chat is excluded, and every other route answers without it.
    server = LiveServer(folder, write_config(folder, {"model": {"enabled": False}})).start()
    client = server.pair()
    now = time.time()
    client.post("/api/history/import", {"format": "privchat-export", "version": 1, "exported_at": now, "conversations": [
        {"id": f"fuzz-{i}", "title": f"fuzz {i}", "created_at": now + i, "updated_at": now + i, "messages": [
            {"id": f"fuzz-{i}-m", "role": "user", "content": "seeded", "status": "complete", "created_at": now + i}]}
        for i in range(3)]})
    document = client.get("/api/openapi.json")
    assert document.status_code == 200, document.text
    yield server, client.device, document.json()
    server.stop()


def _operations(document: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    return [op for op in operations if (op.method.upper(), op.path) not in EXCLUDED]


def _send_signed(session: requests.Session, base_url: str, device: TestDevice, case: Any,
                 server_key: ServerKey) -> requests.Response:
    kwargs = case.as_transport_kwargs(base_url=base_url)
    request = requests.Request(**{k: kwargs[k] for k in ("method", "url", "headers", "params", "json", "data", "cookies")
                                  if kwargs.get(k) is not None})
    prepared = session.prepare_request(request)
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if prepared.path_url.split("?")[0] == "/api/health":
        return session.send(prepared, timeout=30)  # public and plain: it publishes the key to seal to
    # Sealed as the page seals it (docs/E2E.md): the fuzzed JSON is what the handler opens.
    exchange = SealedExchange(server_key, prepared.method, prepared.path_url, device.device_id, body)
    prepared.body = exchange.sealed_body or None
    prepared.headers.pop("Content-Type", None)
    prepared.headers["Content-Length"] = str(len(exchange.sealed_body))
    prepared.headers.update(exchange.signed_headers(device, prepared.method, prepared.path_url))
    response = session.send(prepared, timeout=30)
    opener = exchange.opener(response)
    if opener is not None:
        # The answer, opened; its JSON is checked against the schema as the handler made it.
        response._content = split_meta(unpad_body(opener.open(response.content)[0]), response.status_code)[1]
        if response._content[:1] in (b"{", b"["):
            # schemathesis reads the headers from the raw urllib3 response
            response.raw.headers["Content-Type"] = response.headers["Content-Type"] = "application/json"
    return response


def test_the_openapi_document_is_signed_and_lists_the_api(fuzz_target: Any) -> None:
    server, _device, document = fuzz_target
    import httpx

    assert httpx.get(server.url + "/api/openapi.json", timeout=10).status_code == 401  # not public
    paths = set(document["paths"])
    assert {"/api/health", "/api/history", "/api/settings", "/api/devices"} <= paths
    assert len(_operations(document)) >= 10


def test_fuzz_every_operation_signed(fuzz_target: Any) -> None:
    server, device, document = fuzz_target
    operations = _operations(document)
    session = requests.Session()
    server_key = ServerKey.from_health(requests.get(server.url + "/api/health", timeout=10).json())
    failures: list[str] = []
    counts: dict[str, int] = {}

    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=FEWER.get((label, mode), MAX_EXAMPLES), deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                response = _send_signed(session, server.url, device, case, server_key)
                counts[label] = counts.get(label, 0) + 1
                # A signature problem would make the whole run trivially "pass" with 401s.
                assert response.status_code != 401, (label, response.text)
                try:
                    case.validate_response(response, checks=CHECKS)
                except Exception as exc:  # collect, so one run reports every broken operation
                    failures.append(f"{label} [{mode.value}]: {response.status_code} {response.text[:300]}\n{exc}")
                    raise

            try:
                run()
            except Unsatisfiable:
                # Nothing to break in an operation without parameters or body: no negative cases.
                assert mode is GenerationMode.NEGATIVE, label
            except Exception:
                if not failures or not failures[-1].startswith(label):
                    raise
    assert not failures, "\n\n".join(failures[:10])
    assert server.process.poll() is None
    assert set(counts) == {f"{op.method.upper()} {op.path}" for op in operations}
    assert sum(counts.values()) >= len(operations) * 5, counts
