"""Reaching privchat from anywhere: checking a cloudflared config against cloudflared's own rules.

The backend only ever listens on loopback; the public path is a cloudflared tunnel guarded by
Cloudflare Access, pointed at privchat's tunnel port. ``validate`` checks a cloudflared config the
way cloudflared does, plus privchat's own rules, without needing cloudflared; the owner command that
writes the config is ``privchat.commands.tunnel_setup``.
"""

from privchat.tunnel.validate import validate_cloudflared_config, validate_cloudflared_file

__all__ = ["validate_cloudflared_config", "validate_cloudflared_file"]
