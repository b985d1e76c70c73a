"""Rate limits (quart-rate-limiter): per device on signed routes, per client on registration.

quart-rate-limiter fixes a limit's count when a route is decorated, but privchat reads its limits
from the config of the app serving the request, so a limit here looks its count up at run time.
"""

from __future__ import annotations

from datetime import timedelta

from quart import current_app, g, request
from quart_rate_limiter import RateLimit


def client_address() -> str:
    """Behind the tunnel every request comes from 127.0.0.1; trust Cloudflare's header only after Access passed."""
    if g.get("access_claims") and request.headers.get("Cf-Connecting-Ip"):
        return request.headers["Cf-Connecting-Ip"]
    return request.remote_addr or "unknown"


async def device_or_client_key() -> str:
    device_id = g.get("device_id")
    return f"device:{device_id}" if device_id is not None else f"client:{client_address()}"


class ConfiguredLimit(RateLimit):
    """A per-minute limit whose count is ``rate_limits.<name>`` of the current app's config."""

    def __init__(self, name: str) -> None:  # noqa: super().__init__ would fix the count
        self.name = name
        self.period = timedelta(minutes=1)
        self.key_function = device_or_client_key
        self.skip_function = None

    @property  # type: ignore[override]
    def count(self) -> int:
        return int(current_app.config["PRIVCHAT_LIMITS"][self.name])

    @property
    def key(self) -> str:
        return f"{self.name}-per-minute"

    def __repr__(self) -> str:
        return f"ConfiguredLimit({self.name!r})"


signed_limit = ConfiguredLimit("signed_per_minute")
chat_limit = [ConfiguredLimit("chat_per_minute")]
registration_limit = [ConfiguredLimit("registration_per_minute")]
