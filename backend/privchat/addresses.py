"""Host names, loopback addresses, host:port strings and the port probe: one home for each.

The server binds them, the config validates them, the tunnel setup writes them into cloudflared's
rules and the owner tools probe them; when each kept its own copy, an IPv6 address was bracketed in
one place and not in another. Everything here is pure except ``port_in_use``.
"""

from __future__ import annotations

import ipaddress
import re
import socket

# A DNS name: labels of letters, digits and inner hyphens, at most 63 each, 253 in all.
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def is_hostname(value: str, *, dotted: bool = False) -> bool:
    """A bare host name (no scheme, port or path); ``dotted``: at least two labels (a name in a zone)."""
    return bool(HOSTNAME.match(value)) and (not dotted or "." in value)


def is_loopback_host(value: str) -> bool:
    """127.0.0.0/8, ::1 (bracketed or not) or localhost."""
    if value.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(value.strip("[]")).is_loopback
    except ValueError:
        return False


def host_port(host: str, port: int) -> str:
    """``host:port`` as a URL or a bind list wants it: an IPv6 address in brackets."""
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def http_url(host: str, port: int) -> str:
    return f"http://{host_port(host, port)}"


def port_in_use(host: str, port: int) -> bool:
    """Would binding ``host:port`` fail? (Another program, or privchat itself, holds it.)"""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError:
            return True
    return False


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Does something accept connections on ``host:port``?"""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        return probe.connect_ex((host.strip("[]"), port)) == 0


def ip_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` is, or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_private_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, link-local, a private range, or carrier-grade NAT space (which Tailscale uses)."""
    if address.is_loopback or address.is_link_local:
        return True
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"):
        return True
    return address.is_private and not address.is_unspecified and not address.is_multicast


def upstream_host_allowed(host: str, allowed: list[str]) -> bool:
    """A model server may be on loopback, or on a private host the owner named."""
    host = host.strip("[]").lower()
    return is_loopback_host(host) or host in allowed
