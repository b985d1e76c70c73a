"""Running the app on Hypercorn: loopback only, clean stops on SIGINT and SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Callable

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from .addresses import host_port, is_loopback_host
from .app import create_app
from .config import Config, ConfigError
from .storage.db import Database

log = logging.getLogger(__name__)


async def serve(config: Config, *, on_ready: Callable[[str], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Open the database first (a wrong key stops here, before any port is bound), then serve."""
    if not is_loopback_host(config.host):  # the config validator already refuses; this is the last line
        raise ConfigError(f"server.host: {config.host!r} is not a loopback address; privchat listens on loopback only")
    database = await Database.open(config)
    app = create_app(config, database=database)
    state = app.extensions["privchat"]
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            pass

    async def shutdown_trigger() -> None:
        await stop.wait()
        log.info("stopping: saving running replies")
        # Stop generations first, so open streams end with their partial reply stored.
        await state.generations.shutdown()

    hypercorn_config = HypercornConfig()
    # Trust follows the socket: the tunnel listener is a second port that only cloudflared points
    # at, and the gate treats every request on it as coming through the tunnel (api/gate.py).
    hypercorn_config.bind = [host_port(config.host, config.port)]
    if config.access_enabled:
        hypercorn_config.bind.append(host_port(config.host, config.tunnel_port))
    hypercorn_config.accesslog = None
    hypercorn_config.errorlog = "-"
    hypercorn_config.graceful_timeout = 3.0
    hypercorn_config.keep_alive_timeout = 75.0  # longer than the edge's idle keep-alive

    @app.before_serving
    async def announce() -> None:
        if config.access_enabled:
            log.info("tunnel listener on http://%s (Access JWT required on every request)",
                     host_port(config.host, config.tunnel_port))
        if on_ready is not None:
            on_ready(f"http://{host_port(config.host, config.port)}")

    await hypercorn_serve(app, hypercorn_config, shutdown_trigger=shutdown_trigger)
