"""Shared fixtures: a live server per test (or per module), its config, a paired device."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.support.inprocess import InProcessServer, started
from tests.support.server import LiveServer, SignedClient, write_config


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
    folder = tmp_path_factory.mktemp("shared")
    server = LiveServer(folder, write_config(folder)).start()
    yield server
    server.stop()


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
