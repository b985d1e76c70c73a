"""Shared fixtures: a live server per test (or per module), its config, a paired device."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.support.inprocess import InProcessServer, started
from tests.support.server import LiveServer, SignedClient, started_live, write_config

# Fixtures that start a live server, the model, cloudflared or Chromium: a test that uses one (or a
# fixture built on one) is marked `live`, so `scripts/test --fast` (-m "not live") leaves it out.
# A test that starts a LiveServer itself is skipped there by LiveServer.start.
LIVE_FIXTURES = {"server_factory", "shared_server", "shared_client", "second_device", "chain", "device", "browser",
                 "stack_factory", "shared_stack", "open_page", "speech_server", "live_access", "tight", "fuzz_target",
                 "model_copy", "second_gguf", "engine", "upstreams"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if LIVE_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("browser") \
                or item.get_closest_marker("model"):
            item.add_marker(pytest.mark.live)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    started: list[LiveServer] = []

    def make(overrides: dict | None = None, *, name: str = "server", start: bool = True, wait_for: str | None = "ready") -> LiveServer:
        folder = tmp_path / name
        server = LiveServer(folder, write_config(folder, overrides))
        started.append(server)
        return server.start(wait_for=wait_for) if start else server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server with the real model for a whole module: most API tests need no fresh one."""
    yield from started_live(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="module")
def shared_client(shared_server: LiveServer) -> SignedClient:
    return shared_server.pair()


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """The app in this process (model off): gate, CORS and error-shape tests talk to it in milliseconds."""
    yield from started(tmp_path_factory.mktemp("inprocess"))


@pytest.fixture(scope="module")
def app_client(app_server: InProcessServer) -> SignedClient:
    return app_server.pair()
