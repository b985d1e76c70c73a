"""Cloudflare Access: the backend checks the edge's JWT itself.

Access at the edge is the first lock; this is the second, for the day the Access application is
misconfigured or removed, or a request reaches the origin by another path while claiming the
public hostname. Only RS256 is accepted (no ``none``, no HMAC with the public key as secret), the
audience must hold the application's AUD tag, the issuer must be the team domain.

Signing keys come from the team's certs URL with an async client (never blocking the event loop),
are cached by ``kid``, and are refetched on an unknown ``kid`` at most once a minute, so a flood of
made-up ``kid`` values cannot turn the server into a request cannon.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
import jwt
from jwt.algorithms import RSAAlgorithm

from ..errors import PrivchatError

log = logging.getLogger(__name__)

ACCESS_HEADER = "Cf-Access-Jwt-Assertion"
REFETCH_INTERVAL = 60.0
FETCH_TIMEOUT = 5.0
LEEWAY_SECONDS = 30


class AccessError(PrivchatError):
    """A token the check refuses; the gate answers 403 access_denied with this sentence."""


class AccessVerifier:
    def __init__(self, team_domain: str, audiences: list[str], certs_url: str | None = None) -> None:
        self.issuer = team_domain.rstrip("/")
        self.audiences = audiences
        self.certs_url = certs_url or f"{self.issuer}/cdn-cgi/access/certs"
        self._keys: dict[str, Any] = {}
        self._last_fetch = 0.0
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._last_fetch < REFETCH_INTERVAL and self._last_fetch:
                return
            self._last_fetch = time.monotonic()
            try:
                async with httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as client:
                    response = await client.get(self.certs_url)
                response.raise_for_status()
                document = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("could not fetch Access signing keys from %s: %s", self.certs_url, type(exc).__name__)
                return
            keys: dict[str, Any] = {}
            for jwk in document.get("keys", []) if isinstance(document, dict) else []:
                if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and jwk.get("kid"):
                    try:
                        keys[jwk["kid"]] = RSAAlgorithm.from_jwk(json.dumps(jwk))
                    except (ValueError, KeyError, jwt.InvalidKeyError):
                        continue
            if keys:
                self._keys = keys

    async def _key_for(self, kid: str) -> Any:
        if kid not in self._keys:
            await self._refresh()
        key = self._keys.get(kid)
        if key is None:
            raise AccessError("the Access token was signed by an unknown key")
        return key

    async def verify(self, token: str | None) -> dict[str, Any]:
        if not token:
            raise AccessError("the request came through the public hostname without a Cloudflare Access token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AccessError("the Access token is not a JWT") from exc
        if header.get("alg") != "RS256":
            raise AccessError(f"the Access token uses {header.get('alg')!r}; only RS256 is accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AccessError("the Access token names no signing key (kid)")
        key = await self._key_for(kid)
        try:
            return jwt.decode(
                token, key=key, algorithms=["RS256"], audience=self.audiences, issuer=self.issuer,
                leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AccessError("the Access token has expired; sign in again") from exc
        except jwt.InvalidAudienceError as exc:
            raise AccessError("the Access token is for another application (aud)") from exc
        except jwt.InvalidIssuerError as exc:
            raise AccessError("the Access token was issued by another team (iss)") from exc
        except jwt.PyJWTError as exc:
            raise AccessError(f"the Access token is not valid ({type(exc).__name__})") from exc
