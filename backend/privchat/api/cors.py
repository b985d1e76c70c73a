"""CORS: which browser origins may call the API, with which methods and headers.

The same values serve twice: the backend answers preflights on the local port itself and sets the
CORS headers on every real response, and behind the tunnel Cloudflare Access answers the
preflights (cloudflared's Access check refuses any request without a token, and browsers never send
credentials on a preflight), so `privchat tunnel setup` prints these values for the owner to enter
in the Access application's CORS settings. One list here keeps the two from drifting apart.
"""

from __future__ import annotations

from quart import Quart
from quart_cors import cors

# What the page sends: the body type and the RFC 9421 signature headers (pages/src/lib/api.js).
REQUEST_HEADERS = ["Content-Type", "Content-Digest", "Signature", "Signature-Input", "Privchat-E2E"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# When the Access session behind a tunnelled request ends (its JWT's exp), so the page can tell
# "Access wants a sign-in" from "your computer is not answering" when a later request fails with
# no readable answer (both reach the page as a CORS error; see pages/src/lib/api.js).
ACCESS_EXPIRES_HEADER = "Privchat-Access-Expires"
EXPOSE_HEADERS = ["Retry-After", "Content-Disposition", ACCESS_EXPIRES_HEADER, "Privchat-E2E-Nonce"]
PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight answer


def install_cors(app: Quart, allowed_origins: list[str]) -> Quart:
    return cors(app, allow_origin=allowed_origins, allow_credentials=True, allow_headers=REQUEST_HEADERS,
                allow_methods=METHODS, expose_headers=EXPOSE_HEADERS, max_age=PREFLIGHT_MAX_AGE)
