"""Rate limits (quart-rate-limiter): per device on signed routes, per Access identity on registration.

Behind the tunnel every request comes from cloudflared on loopback, so the peer address says
nothing about who sent it: a bucket keyed by it would let anyone who reaches the edge use up the
owner's requests. Buckets are therefore keyed by the verified device (after the signature), else by
the verified Access identity (after the JWT), and only on the local port by the peer address.
CORS preflights are never counted: they carry no credentials and must never starve a real request.

quart-rate-limiter fixes a limit's count when a route is decorated, but privchat reads its limits
from the config of the app serving the request, so a limit here looks its count up at run time.
"""

from __future__ import annotations

from datetime import timedelta

from quart import current_app, g, request
from quart_rate_limiter import RateLimit


async def limit_key() -> str:
    """The bucket: the verified device, else the verified Access identity, else (local port only) the peer."""
    device_id = g.get("device_id")
    if device_id is not None:
        return f"device:{device_id}"
    claims = g.get("access_claims")
    if claims:
        return f"access:{claims.get('sub') or claims.get('email') or 'unnamed'}"
    return f"local:{request.remote_addr or 'unknown'}"


async def is_preflight() -> bool:
    return request.method == "OPTIONS"


class ConfiguredLimit(RateLimit):
    """A per-minute limit whose count is ``rate_limits.<name>`` of the current app's config."""

    def __init__(self, name: str) -> None:  # noqa: super().__init__ would fix the count
        self.name = name
        self.period = timedelta(minutes=1)
        self.key_function = limit_key
        self.skip_function = is_preflight

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
