"""Check a cloudflared config against cloudflared's own ingress rules, without cloudflared.

cloudflared refuses to start on a bad ingress list, but only when the tunnel is started, usually
on another machine or under a service manager where the message is easy to miss. Worse, some
mistakes are not refused at all: an ``access:`` block at the top level is silently ignored, so the
tunnel would run with no Access check at the origin. These checks follow cloudflared's rules as
written in its source (``ingress/ingress.go``: ``validateIngress``, ``validateHostname``,
``validateAccessConfiguration``; ``config/configuration.go`` for the field names) and add the
privchat rules that close the silent gaps. Every problem is a sentence that names the field, so
``privchat doctor`` and ``privchat tunnel validate`` can print them as they are.

Given privchat's two ports, the rules that reach privchat are checked too, with cloudflared's
own inheritance (a rule's ``originRequest`` overrides the top-level one key by key, ``access`` as
a whole): such a rule must point at ``tunnel.port``, never at the local ``server.port``; it must
have ``access.required: true``; and it must not rewrite ``Host`` with ``httpHostHeader``, since
privchat refuses a tunnelled request for any host but the public hostname.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from privchat.addresses import is_loopback_host

# Services that cloudflared recognises by name rather than as a URL (ingress.go).
NAMED_SERVICES = frozenset({"hello_world", "hello-world", "bastion", "socks-proxy"})
# URL schemes cloudflared documents for ingress services; http(s)/ws(s) are proxied as HTTP,
# the rest as TCP over WebSocket.
URL_SCHEMES = frozenset({"http", "https", "ws", "wss", "tcp", "ssh", "rdp", "smb"})
_HTTP_STATUS = re.compile(r"^[+-]?[0-9]+$")


@dataclass(frozen=True)
class PrivchatPorts:
    """privchat's two loopback ports: the local one and the one cloudflared must use."""

    local: int
    tunnel: int

    @classmethod
    def of(cls, config: Any) -> "PrivchatPorts":
        return cls(local=config.port, tunnel=config.tunnel_port)


def validate_cloudflared_file(path: Path, ports: PrivchatPorts | None = None) -> list[str]:
    """Read a cloudflared YAML file and validate it; unreadable or non-YAML files are errors too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return [f"{path}: cannot read the cloudflared config ({exc.strerror or exc})."]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [f"{path}: not valid YAML ({exc})."]
    return validate_cloudflared_config(data, ports)


def validate_cloudflared_config(data: Any, ports: PrivchatPorts | None = None) -> list[str]:
    """Every problem in a loaded cloudflared config, as sentences; an empty list means valid."""
    if not isinstance(data, dict):
        return [f"The cloudflared config must be a mapping with tunnel, credentials-file and ingress, got {_kind(data)}."]
    errors: list[str] = []
    for key in ("tunnel", "credentials-file"):
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            errors.append(f"{key}: missing; a locally managed tunnel needs its {_WHY[key]}.")
        elif not isinstance(value, str):
            errors.append(f"{key}: expected a string, got {_kind(value)}.")
    if "access" in data:
        errors.append(
            "access: cloudflared ignores an access block at the top level, so the origin would not "
            "check Access tokens at all; put it under each rule as ingress[N].originRequest.access."
        )
    top_origin = data.get("originRequest")
    if top_origin is not None:
        errors.extend(_check_origin_request("originRequest", top_origin))
    errors.extend(_check_ingress(data.get("ingress")))
    if ports is not None and isinstance(data.get("ingress"), list):
        errors.extend(_check_privchat_rules(data["ingress"], top_origin, ports))
    errors.extend(_placeholders("", data))
    return errors


# Addresses at which cloudflared, on this machine, would reach a privchat listener.
_THIS_MACHINE = frozenset({"localhost", "0.0.0.0", "::"})  # where a cloudflared rule reaches loopback; never bound by privchat


def privchat_port_of(service: Any, ports: PrivchatPorts) -> int | None:
    """The privchat port a rule's service reaches on this machine, or None."""
    if not isinstance(service, str) or not service.lower().startswith(("http://", "https://", "ws://", "wss://")):
        return None
    parts = urlsplit(service)
    try:
        port = parts.port or (443 if parts.scheme.lower() in ("https", "wss") else 80)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if host not in _THIS_MACHINE and not is_loopback_host(host):
        return None
    return port if port in (ports.local, ports.tunnel) else None


def _effective(top: Any, rule_origin: Any, key: str) -> Any:
    """cloudflared's inheritance: the rule's value if it sets one, else the top-level one."""
    if isinstance(rule_origin, dict) and rule_origin.get(key) is not None:
        return rule_origin[key]
    return top.get(key) if isinstance(top, dict) else None


def _check_privchat_rules(ingress: list[Any], top_origin: Any, ports: PrivchatPorts) -> list[str]:
    errors: list[str] = []
    for index, rule in enumerate(ingress):
        if not isinstance(rule, dict):
            continue
        port = privchat_port_of(rule.get("service"), ports)
        if port is None:
            continue
        where = f"ingress[{index}]"
        if port == ports.local:
            errors.append(f"{where}.service: {rule['service']!r} points at privchat's local port {ports.local} (server.port), which "
                          f"refuses tunnelled requests; the tunnel must use tunnel.port {ports.tunnel} (re-run `privchat tunnel setup`).")
        access = _effective(top_origin, rule.get("originRequest"), "access")
        if not (isinstance(access, dict) and access.get("required") is True):
            errors.append(f"{where}: reaches privchat (port {port}) without Cloudflare Access; every rule to privchat needs "
                          "originRequest.access with required: true, teamName and audTag, or anyone who finds the host name reaches it.")
        host_header = _effective(top_origin, rule.get("originRequest"), "httpHostHeader")
        if host_header:
            source = "originRequest.httpHostHeader" if _effective({}, rule.get("originRequest"), "httpHostHeader") else \
                "the top-level originRequest.httpHostHeader"
            errors.append(f"{where}: {source} rewrites Host to {host_header!r} on a rule that reaches privchat (port {port}); privchat "
                          "trusts the port, not the Host, and refuses tunnelled requests for any host but the public hostname: remove it.")
    return errors


_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9-]*>")


def _placeholders(key: str, value: Any) -> list[str]:
    """Template placeholders left in (tunnel/config.example.yml writes them as <LIKE-THIS>)."""
    if isinstance(value, str):
        found = _PLACEHOLDER.search(value)
        return [f"{key}: still holds the template placeholder {found.group(0)}; replace it with your value."] if found else []
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in _placeholders(f"{key}.{k}" if key else str(k), v)]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _placeholders(f"{key}[{i}]", v)]
    return []


_WHY = {
    "tunnel": "name or UUID so cloudflared knows which tunnel to run",
    "credentials-file": "credentials file path (~/.cloudflared/<UUID>.json) to authenticate the tunnel",
}


def _check_ingress(ingress: Any) -> list[str]:
    if ingress is None or ingress == []:
        return ["ingress: the config has no ingress rules; add the API hostname rule and a final catch-all rule (service: http_status:404)."]
    if not isinstance(ingress, list):
        return [f"ingress: expected a list of rules, got {_kind(ingress)}."]
    errors: list[str] = []
    last = len(ingress) - 1
    for index, rule in enumerate(ingress):
        where = f"ingress[{index}]"
        if not isinstance(rule, dict):
            errors.append(f"{where}: expected a rule mapping with hostname and service, got {_kind(rule)}.")
            continue
        errors.extend(_check_rule(where, rule, is_last=index == last))
    return errors


def _check_rule(where: str, rule: dict[str, Any], *, is_last: bool) -> list[str]:
    errors: list[str] = []
    hostname = rule.get("hostname", "")
    path = rule.get("path", "")
    if hostname is None:
        hostname = ""
    if path is None:
        path = ""
    if not isinstance(hostname, str):
        errors.append(f"{where}.hostname: expected a host name string, got {_kind(hostname)}.")
        hostname = ""
    else:
        errors.extend(_check_hostname(f"{where}.hostname", hostname))
    if not isinstance(path, str):
        errors.append(f"{where}.path: expected a regular expression string, got {_kind(path)}.")
        path = ""
    elif path:
        errors.extend(_check_path(f"{where}.path", path))

    catch_all = hostname in ("", "*") and path == ""
    if is_last and not catch_all:
        errors.append(
            f"{where}: the last ingress rule must match every request (no hostname, or '*', and no path), "
            "for example {service: http_status:404}."
        )
    if not is_last and catch_all:
        errors.append(
            f"{where}: this rule matches every request ({'no hostname' if not hostname else repr(hostname)}, no path), "
            "so the rules after it would never be used; only the last rule may match everything."
        )

    errors.extend(_check_service(f"{where}.service", rule.get("service"), rule.get("originRequest")))
    if "access" in rule:
        errors.append(f"{where}.access: cloudflared ignores access here; it belongs under {where}.originRequest.access.")
    if rule.get("originRequest") is not None:
        errors.extend(_check_origin_request(f"{where}.originRequest", rule["originRequest"]))
    return errors


def _check_hostname(key: str, hostname: str) -> list[str]:
    if "/" in hostname:
        return [f"{key}: {hostname!r} must be a bare host name, without scheme or path."]
    errors: list[str] = []
    if _has_port(hostname):
        errors.append(f"{key}: {hostname!r} contains a port; cloudflared hostnames cannot have one (the edge serves 443).")
    stars = hostname.count("*")
    # cloudflared only rejects a '*' after the first character; a '*' not followed by '.' would
    # pass it but never act as a wildcard, so privchat requires the documented '*.' form.
    if stars > 1 or (stars == 1 and hostname != "*" and not hostname.startswith("*.")):
        errors.append(
            f"{key}: {hostname!r} is not a valid pattern; a hostname may hold at most one wildcard, "
            "and only as a leading '*.' for subdomains, e.g. '*.example.com'."
        )
    return errors


def _has_port(hostname: str) -> bool:
    """Mirror Go's net.SplitHostPort succeeding: 'host:port' or '[v6]:port'."""
    if hostname.startswith("["):
        end = hostname.find("]")
        return end != -1 and hostname[end + 1:end + 2] == ":"
    return hostname.count(":") == 1


def _check_path(key: str, pattern: str) -> list[str]:
    unsupported = _re2_unsupported(pattern)
    if unsupported:
        return [f"{key}: {pattern!r} uses {unsupported}, which cloudflared's regular expressions (Go RE2) do not support."]
    try:
        re.compile(pattern.replace("(?<", "(?P<").replace("(?P<=", "(?<=").replace("(?P<!", "(?<!"))
    except re.error as exc:
        return [f"{key}: {pattern!r} is not a valid regular expression ({exc})."]
    return []


def _re2_unsupported(pattern: str) -> str | None:
    """Constructs Python accepts but Go's RE2 rejects: lookarounds, backreferences, atomic groups."""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            if pattern[i + 1] in "123456789":
                return "a backreference"
            i += 2
            continue
        if pattern.startswith(("(?=", "(?!"), i) or pattern.startswith(("(?<=", "(?<!"), i):
            return "a lookaround"
        if pattern.startswith("(?>", i):
            return "an atomic group"
        i += 1
    return None


def _check_service(key: str, service: Any, origin_request: Any) -> list[str]:
    if service is None or service == "":
        return [f"{key}: missing; every rule needs a service such as http://127.0.0.1:8765 or http_status:404."]
    if not isinstance(service, str):
        return [f"{key}: expected a string, got {_kind(service)}."]
    if service.startswith(("unix:", "unix+tls:")):
        socket_path = service.split(":", 1)[1]
        return [] if socket_path else [f"{key}: {service!r} names no socket path (unix:/path/to/socket)."]
    if service.startswith("http_status:"):
        code = service[len("http_status:"):]
        if not _HTTP_STATUS.match(code) or not 100 <= int(code) <= 999:
            return [f"{key}: {service!r} is not a valid HTTP status; use http_status: with a code from 100 to 999, e.g. http_status:404."]
        return []
    if service in NAMED_SERVICES:
        return []
    if isinstance(origin_request, dict) and origin_request.get("bastionMode") is True:
        return []
    parts = urlsplit(service)
    if not parts.scheme or not parts.hostname:
        return [f"{key}: {service!r} is not a valid address; it needs a scheme and a host, e.g. http://127.0.0.1:8765."]
    if parts.scheme.lower() not in URL_SCHEMES:
        return [f"{key}: {service!r} uses the scheme {parts.scheme!r}; cloudflared services use {', '.join(sorted(URL_SCHEMES))}, unix:, http_status: or hello_world."]
    try:
        parts.port
    except ValueError:
        return [f"{key}: {service!r} has an invalid port."]
    if parts.path:
        return [f"{key}: {service!r} has a path; cloudflared cannot proxy to a different path (the request path is kept), so remove {parts.path!r}."]
    return []


def _check_origin_request(key: str, origin_request: Any) -> list[str]:
    if not isinstance(origin_request, dict):
        return [f"{key}: expected a mapping of origin settings, got {_kind(origin_request)}."]
    access = origin_request.get("access")
    if access is None:
        return []
    return _check_access(f"{key}.access", access)


def _check_access(key: str, access: Any) -> list[str]:
    if not isinstance(access, dict):
        return [f"{key}: expected a mapping with required, teamName and audTag, got {_kind(access)}."]
    errors: list[str] = []
    required = access.get("required", False)
    if not isinstance(required, bool):
        errors.append(f"{key}.required: expected true or false, got {_kind(required)}.")
    team = access.get("teamName", "")
    if team is None:
        team = ""
    if not isinstance(team, str):
        errors.append(f"{key}.teamName: expected the Access team name as a string, got {_kind(team)}.")
        team = "?"
    aud = access.get("audTag", [])
    if aud is None:
        aud = []
    if not isinstance(aud, list) or not all(isinstance(tag, str) and tag.strip() for tag in aud):
        errors.append(f"{key}.audTag: expected a list of Access application AUD tags (strings), got {_kind(aud)}.")
        aud = []
    # cloudflared enforces this only when required is true; a tag without a team is a mistake
    # either way, because the token could never be checked.
    if aud and not team.strip():
        errors.append(f"{key}.teamName: cannot be blank when {key}.audTag is set; cloudflared needs the team name to fetch the Access signing keys.")
    return errors


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, (str, int, float, bool)):
        return repr(value)
    return f"a {type(value).__name__}"
