"""Reaching privchat from anywhere: the cloudflared config, its validation and the setup command.

The backend only ever listens on loopback; the public path is a cloudflared tunnel guarded by
Cloudflare Access. This package writes that tunnel's config, checks it against cloudflared's own
ingress rules (cloudflared is not needed to run the checks) and wires the privchat config and the
page to the public API hostname.
"""

from privchat.tunnel.validate import validate_cloudflared_config, validate_cloudflared_file

__all__ = ["validate_cloudflared_config", "validate_cloudflared_file"]
