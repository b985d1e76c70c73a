"""`privchat tunnel setup`: wire the tunnel, the privchat config and the page to one API hostname.

Three files must agree for the phone to reach the backend: cloudflared's config (which host name
goes to privchat's tunnel port, with Access checked per rule), privchat's config (which origins may
call it, which Access team and AUD it trusts, which port is the tunnel's) and the page's API config
and CSP. A fourth place is the Access application in Cloudflare's dashboard: it must answer the
page's CORS preflights itself, so setup prints the exact values to enter there.

By default the page gets an origin of its own (``https://chat.<domain>``): the device key lives in
that origin's IndexedDB, and any script on the same origin could use it. The owner's main site then
links or redirects ``/chat`` there (setup prints the ``_redirects`` line). Getting one of
them wrong fails quietly (a CORS error, a blank page, or worse an unchecked origin), so this
module writes all three from one set of answers, validates each before writing, backs up what it
changes and does nothing when nothing would change.

It never reads or writes the tunnel credentials file: that file is the tunnel's secret, so only
its path goes into the config.

``--remote`` is for a remotely-managed tunnel, the one Cloudflare's dashboard leads with: created
in the dashboard and run with a token (``cloudflared tunnel run --token …``), its public hostnames,
their service and their Access check live in the dashboard, not in a file. Setup then writes no
cloudflared config; it still merges the privchat config and points the page at the API, and prints
exactly what to enter in the dashboard (``remote_dashboard_settings``): the public hostname, the
service (the tunnel port), "Protect with Access" with the team and AUD, and the CORS values.

This module is setup's plan: from the answers, already normalised, to what each file must hold and
what the dashboard must say, then the writes. It asks nothing and prints nothing; the questions,
the printed summary and the steps left to the owner are ``tunnel_setup_text.py``, which also holds
the command (``main_setup``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from privchat.addresses import DNS_LABEL, http_url, is_hostname, is_loopback_host
from privchat.api.cors import METHODS, PREFLIGHT_MAX_AGE, REQUEST_HEADERS
from privchat.config import SCHEMA, ConfigError, config_from_dict
from privchat.errors import PrivchatError
from privchat.files import FileChange, write_file
from privchat.tunnel.validate import PrivchatPorts, validate_cloudflared_config

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_AUD_SHAPE = re.compile(r"^[0-9a-f]{64}$")
ACCESS_DOMAIN_SUFFIX = ".cloudflareaccess.com"

CLOUDFLARED_HEADER = """\
# cloudflared config for privchat, written by `privchat tunnel setup`.
# Re-run that command to change it (it validates against cloudflared's rules and keeps a backup);
# `privchat tunnel validate FILE` checks hand edits. See tunnel/config.example.yml for every key.
# Access is checked per rule (originRequest.access): a top-level access block would be ignored.
"""
PRIVCHAT_HEADER = "# privchat config (the tunnel, access and site keys were set by `privchat tunnel setup`).\n"


class SetupError(PrivchatError, ValueError):
    """Bad input or a file that cannot be merged, phrased as a sentence naming the field."""


# --------------------------------------------------------------------------------------------
# Input: normalise and refuse bad values with a sentence naming the field.
# --------------------------------------------------------------------------------------------

def _https_origin(value: str, what: str, example: str) -> str:
    raw = (value or "").strip()
    parts = urlsplit(raw)
    if parts.scheme != "https":
        raise SetupError(f"{what}: {raw!r} must be an https origin like {example}; "
                         "Cloudflare Pages serves https and browsers block an http page from calling an https API in a useful way.")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise SetupError(f"{what}: {raw!r} must be an origin only ({example}), without path, query or user.")
    try:
        parts.port
    except ValueError as exc:
        raise SetupError(f"{what}: {raw!r} has an invalid port.") from exc
    return f"https://{parts.netloc.lower()}"


def normalize_site_url(value: str) -> str:
    """The owner's main site: https, a host, nothing after it. Its /chat leads to the page."""
    return _https_origin(value, "site URL (--site-url)", "https://example.com")


def normalize_page_origin(value: str) -> str:
    """Where the chat page itself is served (its own Pages project by default); the page lives at <origin>/chat/."""
    return _https_origin(value, "page origin (--page-origin)", "https://chat.example.com")


def default_page_origin(api_host: str) -> str:
    """chat.<the API host's parent domain>: an origin of its own, on the same site as the API (the Access cookie flows)."""
    return f"https://chat.{api_host.split('.', 1)[1]}"


def normalize_api_host(value: str) -> str:
    """A bare host name: cloudflared ingress hostnames cannot hold a scheme, a port or a path."""
    raw = (value or "").strip()
    if "://" in raw:
        raise SetupError(f"API hostname (--api-hostname): {raw!r} has a scheme; give the bare host name like chat-api.example.com.")
    if ":" in raw:
        raise SetupError(f"API hostname (--api-hostname): {raw!r} has a port; the tunnel is reached on 443, give the bare host name like chat-api.example.com.")
    if "/" in raw or "*" in raw:
        raise SetupError(f"API hostname (--api-hostname): {raw!r} must be one bare host name like chat-api.example.com, without path or wildcard.")
    host = raw.lower().rstrip(".")
    if not is_hostname(host, dotted=True):
        raise SetupError(f"API hostname (--api-hostname): {raw!r} is not a host name in your Cloudflare zone like chat-api.example.com.")
    return host


def normalize_team_name(value: str) -> str:
    """The team name, the 'myteam' of myteam.cloudflareaccess.com; the full domain is accepted too."""
    raw = (value or "").strip()
    name = raw.lower()
    if "://" in name:
        name = urlsplit(name).hostname or ""
    if name.endswith(ACCESS_DOMAIN_SUFFIX):
        name = name[: -len(ACCESS_DOMAIN_SUFFIX)]
    if not DNS_LABEL.match(name):
        raise SetupError(f"Access team name (--team-name): {raw!r} is not a DNS label (letters, digits and inner hyphens, "
                         "at most 63); it is the 'myteam' of https://myteam.cloudflareaccess.com.")
    return name


def normalize_aud(value: str) -> str:
    """The Access application's AUD tag; without it no token could be checked."""
    aud = (value or "").strip()
    if not aud:
        raise SetupError("AUD tag (--aud): empty; copy the Application Audience (AUD) Tag from the Access application's overview page.")
    if any(ch.isspace() for ch in aud) or not aud.isascii():
        raise SetupError(f"AUD tag (--aud): {aud!r} contains spaces or non-ASCII characters; paste only the tag.")
    return aud


def normalize_tunnel(value: str) -> str:
    """A tunnel name or UUID as `cloudflared tunnel create` knows it."""
    name = (value or "").strip()
    if not name or any(ch.isspace() for ch in name) or "/" in name or not name.isascii():
        raise SetupError(f"tunnel (--tunnel): {value!r} must be the tunnel's name or UUID, without spaces or slashes.")
    return name


def normalize_port(value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise SetupError(f"tunnel port (--tunnel-port): {value!r} is not a number from 1 to 65535.") from None
    if not 1 <= port <= 65535:
        raise SetupError(f"tunnel port (--tunnel-port): {port} is not from 1 to 65535.")
    return port


def normalize_credentials_file(value: str) -> Path:
    raw = (value or "").strip()
    if not raw:
        raise SetupError("credentials file (--credentials-file): empty; give the path cloudflared printed on `cloudflared tunnel create`, e.g. ~/.cloudflared/<UUID>.json.")
    return Path(os.path.abspath(os.path.expanduser(raw)))


@dataclass(frozen=True)
class SetupInput:
    """The owner's answers, already normalised."""

    site_url: str
    api_host: str
    page_origin: str
    tunnel: str  # "" for a remotely-managed tunnel (--remote): the dashboard knows it
    credentials_file: Path | None  # None for a remotely-managed tunnel: its token stays with cloudflared
    team_name: str
    aud: str
    tunnel_port: int
    keep_local: bool = False
    remote: bool = False  # a tunnel created in the dashboard and run with a token: no cloudflared config is written

    @property
    def page_on_main_site(self) -> bool:
        return self.page_origin == self.site_url

    @property
    def api_origin(self) -> str:
        return f"https://{self.api_host}"

    @property
    def team_domain(self) -> str:
        return f"https://{self.team_name}{ACCESS_DOMAIN_SUFFIX}"


# --------------------------------------------------------------------------------------------
# What to write: pure functions from input (and existing content) to new content.
# --------------------------------------------------------------------------------------------

def service_url(host: str, port: int) -> str:
    """cloudflared must reach the address privchat binds (validated loopback), IPv6 in brackets."""
    return http_url(host.strip("[]") or "127.0.0.1", port)


def api_rule(inp: SetupInput, host: str) -> dict[str, Any]:
    return {
        "hostname": inp.api_host,
        "service": service_url(host, inp.tunnel_port),
        "originRequest": {"access": {"required": True, "teamName": inp.team_name, "audTag": [inp.aud]}},
    }


def build_cloudflared_config(inp: SetupInput, host: str, existing: Any = None) -> tuple[dict[str, Any], list[str]]:
    """The cloudflared mapping: our rule first, the owner's other rules kept, a 404 catch-all last."""
    notes: list[str] = []
    data: dict[str, Any] = {"tunnel": inp.tunnel, "credentials-file": str(inp.credentials_file)}
    kept_rules: list[Any] = []
    if isinstance(existing, dict):
        for key, value in existing.items():
            if key not in ("tunnel", "credentials-file", "ingress", "access"):
                data[key] = value
        rules = existing.get("ingress") if isinstance(existing.get("ingress"), list) else []
        for rule in rules[:-1] if rules else []:
            if isinstance(rule, dict) and rule.get("hostname") not in (None, "", "*", inp.api_host):
                kept_rules.append(rule)
        if kept_rules:
            notes.append(f"kept {len(kept_rules)} other ingress rule(s) already in the cloudflared config")
        if "access" in existing:
            notes.append("dropped the top-level access block, which cloudflared ignores; Access is now set on the API rule")
    data["ingress"] = [api_rule(inp, host), *kept_rules, {"service": "http_status:404"}]
    return data, notes


def render_cloudflared_config(data: dict[str, Any]) -> str:
    return CLOUDFLARED_HEADER + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def merge_privchat_config(raw: dict[str, Any], inp: SetupInput, cloudflared_path: Path | None) -> tuple[dict[str, Any], list[str]]:
    """The privchat config with the tunnel keys set and every other key left as the owner wrote it."""
    notes: list[str] = []
    merged: dict[str, Any] = {section: (dict(keys) if isinstance(keys, dict) else keys) for section, keys in raw.items()}
    for section in ("server", "access", "site", "tunnel"):
        if merged.get(section) is None:
            merged[section] = {}
        if not isinstance(merged[section], dict):
            raise SetupError(f"{section}: the privchat config has {merged[section]!r} here instead of a mapping; fix it before running setup.")
    server = merged["server"]
    current = server.get("allowed_origins", SCHEMA["server"]["allowed_origins"].default)
    if not isinstance(current, list):
        raise SetupError(f"server.allowed_origins: expected a list of origins in the privchat config, got {current!r}; fix it before running setup.")
    others = [o for o in current if isinstance(o, str) and o.lower().rstrip("/") != inp.page_origin]
    local = [o for o in others if is_loopback_host(urlsplit(o).hostname or "")]
    remote = [o for o in others if o not in local]
    if local and not inp.keep_local:
        notes.append(f"server.allowed_origins: dropped the local development origin(s) {', '.join(local)} (--keep-local keeps them)")
    if remote:
        notes.append(f"server.allowed_origins still lists {', '.join(remote)}; remove them if the page is no longer served there")
    server["allowed_origins"] = [inp.page_origin, *remote, *(local if inp.keep_local else [])]
    if server.get("port", SCHEMA["server"]["port"].default) == inp.tunnel_port:
        raise SetupError(f"tunnel port (--tunnel-port): {inp.tunnel_port} is privchat's local server.port; the tunnel needs a port of its own.")
    if merged["tunnel"].get("port", SCHEMA["tunnel"]["port"].default) != inp.tunnel_port:
        merged["tunnel"]["port"] = inp.tunnel_port
        notes.append(f"tunnel.port set to {inp.tunnel_port}, the port the cloudflared rule points at")
    merged["access"].update({"team_domain": inp.team_domain, "aud": [inp.aud], "public_hostnames": [inp.api_host]})
    merged["site"].update({"url": inp.page_origin, "main_url": inp.site_url, "api_origin": inp.api_origin})
    if cloudflared_path is not None:
        merged["tunnel"]["config_file"] = str(cloudflared_path)
    elif merged["tunnel"].get("config_file"):
        notes.append(f"tunnel.config_file still names {merged['tunnel']['config_file']}; a remotely-managed tunnel does not "
                     "read it (privchat doctor still checks it: remove the key if that file is no longer used)")
    return merged, notes


def rewrite_csp(text: str, api_origin: str, keep_local: bool) -> tuple[str, bool]:
    """Point connect-src at the API origin in every CSP line of a Pages _headers file.

    The page may only fetch from 'self' and the API; the loopback origins are for local
    development and are dropped unless --keep-local asks to keep them.
    """
    found = False

    def replace(match: re.Match[str]) -> str:
        nonlocal found
        found = True
        sources = match.group(2).split()
        kept = ["'self'", api_origin]
        if keep_local:
            kept += [s for s in sources if _is_loopback_source(s) and s not in kept]
        return f"{match.group(1)} {' '.join(kept)}"

    lines = []
    for line in text.splitlines(keepends=True):
        if "content-security-policy" in line.lower():
            line = re.sub(r"(connect-src)((?:[ \t]+[^;\s]+)*)", replace, line, count=1)
        lines.append(line)
    return "".join(lines), found


def _is_loopback_source(source: str) -> bool:
    host = urlsplit(source).hostname if "://" in source else None
    return bool(host) and is_loopback_host(host)


def merge_page_config(existing: dict[str, Any] | None, api_origin: str) -> dict[str, Any]:
    merged = dict(existing or {})
    merged["apiOrigin"] = api_origin
    return merged


def render_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------------
# The whole run.
# --------------------------------------------------------------------------------------------

@dataclass
class SetupPaths:
    privchat_config: Path
    cloudflared_config: Path
    pages_dir: Path | None


@dataclass
class SetupResult:
    inputs: dict[str, Any]
    changes: list[FileChange]
    warnings: list[str]
    service: str  # where cloudflared sends the API host's requests: privchat's tunnel port
    cloudflared_config: Path | None  # the file written (None for a remotely-managed tunnel)
    # What is left for the owner to do, told by the conversation (tunnel_setup_text.remaining_steps).
    next_steps: list[str] = field(default_factory=list)
    access_cors: dict[str, Any] = field(default_factory=dict)
    main_site_redirects: list[str] = field(default_factory=list)
    dashboard: dict[str, Any] = field(default_factory=dict)  # --remote: the tunnel's public hostname, as the dashboard asks

    @property
    def changed(self) -> bool:
        return any(c.status not in ("unchanged", "skipped", "missing") for c in self.changes)

    def to_json(self) -> dict[str, Any]:
        summary = {"ok": True, "changed": self.changed, "inputs": self.inputs,
                   "files": [asdict(c) for c in self.changes], "warnings": self.warnings, "next_steps": self.next_steps,
                   "access_cors": self.access_cors, "main_site_redirects": self.main_site_redirects}
        if self.dashboard:
            summary["dashboard"] = self.dashboard
        return summary


def default_pages_dir() -> Path:
    """The repo's pages/ next to backend/, found from this file (an editable install)."""
    return Path(__file__).resolve().parents[3] / "pages"


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """An existing YAML file as a mapping ({} when absent); anything else is refused."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SetupError(f"{what} {path}: not valid YAML ({exc}); fix or move it before running setup.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SetupError(f"{what} {path}: expected a mapping at the top, got {type(data).__name__}; fix or move it before running setup.")
    return data


def run_setup(inp: SetupInput, paths: SetupPaths, *, dry_run: bool = False) -> SetupResult:
    """Plan every file first (so bad input or a bad existing file writes nothing), then write."""
    warnings: list[str] = []
    privchat_raw = read_yaml_mapping(paths.privchat_config, "privchat config")
    cloudflared_path = Path(os.path.abspath(os.path.expanduser(str(paths.cloudflared_config))))
    if inp.credentials_file is not None:
        protected = inp.credentials_file.resolve()
        for out in (cloudflared_path, paths.privchat_config):
            if out.resolve() == protected:
                raise SetupError(f"credentials file (--credentials-file): {inp.credentials_file} is also an output path; "
                                 "setup never writes the tunnel's credentials, choose another path.")

    # 1. privchat config: merged and validated with privchat's own rules.
    merged, privchat_notes = merge_privchat_config(privchat_raw, inp, None if inp.remote else cloudflared_path)
    try:
        config = config_from_dict(merged, config_dir=paths.privchat_config.parent)
    except ConfigError as exc:
        raise SetupError(f"the privchat config would be invalid after setup: {exc}") from exc
    privchat_text = PRIVCHAT_HEADER + yaml.safe_dump(merged, sort_keys=False, default_flow_style=False, allow_unicode=True)

    # 2. cloudflared config: built from the input, validated with cloudflared's rules (not for a
    # remotely-managed tunnel: its rules live in the dashboard, printed below instead).
    if not inp.remote:
        existing_cloudflared = read_yaml_mapping(cloudflared_path, "cloudflared config")
        cloudflared_data, cloudflared_notes = build_cloudflared_config(inp, config.host, existing_cloudflared)
        problems = validate_cloudflared_config(cloudflared_data, PrivchatPorts.of(config))
        if problems:
            raise SetupError(f"the cloudflared config {cloudflared_path} would be invalid, so nothing was written: " + " ".join(problems))
        cloudflared_text = render_cloudflared_config(cloudflared_data)

    # 3. the page: API origin and CSP.
    page_plan: list[tuple[str, Path, str | None, list[str]]] = []
    if paths.pages_dir is not None and paths.pages_dir.is_dir():
        config_json = paths.pages_dir / "public" / "chat" / "config.json"
        existing_json: dict[str, Any] | None = None
        if config_json.exists():
            try:
                existing_json = json.loads(config_json.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise SetupError(f"page config {config_json}: not valid JSON ({exc}); fix or remove it before running setup.") from exc
            if not isinstance(existing_json, dict):
                raise SetupError(f"page config {config_json}: expected a JSON object, fix or remove it before running setup.")
        page_plan.append(("page API config", config_json, render_json(merge_page_config(existing_json, inp.api_origin)), []))
        headers = paths.pages_dir / "_headers"
        if headers.exists():
            new_headers, found = rewrite_csp(headers.read_text(encoding="utf-8"), inp.api_origin, inp.keep_local)
            if found:
                page_plan.append(("page CSP (_headers)", headers, new_headers, []))
            else:
                page_plan.append(("page CSP (_headers)", headers, None,
                                  [f"no Content-Security-Policy line with connect-src found; add `connect-src 'self' {inp.api_origin};` to it by hand"]))
        else:
            page_plan.append(("page CSP (_headers)", headers, None,
                              [f"{headers} is missing; its CSP must allow `connect-src 'self' {inp.api_origin}` or the page cannot call the API"]))

    # Nothing refused: write.
    changes = [] if inp.remote else [
        write_file("cloudflared config", cloudflared_path, cloudflared_text, mode=0o600, dry_run=dry_run, notes=cloudflared_notes)]
    changes.append(write_file("privchat config", paths.privchat_config, privchat_text, mode=0o600, dry_run=dry_run,
                              notes=privchat_notes, same=lambda old: (yaml.safe_load(old) or {}) == merged))
    privchat_change = changes[-1]
    if paths.pages_dir is None or not paths.pages_dir.is_dir():
        changes.append(FileChange("page files", str(paths.pages_dir), "skipped",
                                  notes=["pages directory not found; set apiOrigin in pages/public/chat/config.json and the CSP connect-src in pages/_headers yourself, or pass --pages-dir"]))
    for what, path, content, notes in page_plan:
        if content is None:
            changes.append(FileChange(what, str(path), "missing", notes=notes))
        else:
            changes.append(write_file(what, path, content, mode=0o644, dry_run=dry_run, notes=notes))
    if privchat_change.status == "updated":
        warnings.append("the privchat config was rewritten from its parsed form, so any comments in it are only in the backup")

    if inp.credentials_file is not None and not inp.credentials_file.exists():
        warnings.append(f"the credentials file {inp.credentials_file} does not exist yet; `cloudflared tunnel create {inp.tunnel}` writes it "
                        "(use the path it prints, then re-run setup if it differs)")
    if inp.page_on_main_site:
        warnings.append(f"the page shares the origin {inp.page_origin} with the rest of your site: every script served there "
                        "(analytics, widgets, other pages) can use the device keys this page keeps in the origin's IndexedDB and "
                        "so sign requests as your devices; an origin of its own (the default, --page-origin https://chat.<domain>) avoids that")
    elif _site_of(urlsplit(inp.page_origin).hostname or "") != _site_of(inp.api_host):
        warnings.append(f"the page ({inp.page_origin}) and the API ({inp.api_origin}) are not on the same site, so browsers that block "
                        "third-party cookies (Safari, Firefox) will not send the Access cookie; serve both under one domain")
    if not _AUD_SHAPE.match(inp.aud):
        warnings.append(f"the AUD tag {inp.aud!r} is not 64 hexadecimal characters like the tags Cloudflare shows; check you copied the Application Audience (AUD) Tag")

    inputs = {"site_url": inp.site_url, "page_origin": inp.page_origin, "api_hostname": inp.api_host, "api_origin": inp.api_origin,
              "tunnel": inp.tunnel, "credentials_file": str(inp.credentials_file), "team_name": inp.team_name,
              "team_domain": inp.team_domain, "aud": inp.aud, "tunnel_port": inp.tunnel_port, "keep_local": inp.keep_local,
              "cloudflared_config": str(cloudflared_path), "privchat_config": str(paths.privchat_config)}
    service = service_url(config.host, inp.tunnel_port)
    if inp.remote:
        for key in ("tunnel", "credentials_file", "cloudflared_config"):
            del inputs[key]
        inputs["mode"] = "remote"
        return SetupResult(inputs=inputs, changes=changes, warnings=warnings, service=service, cloudflared_config=None,
                           access_cors=access_cors_settings(inp), main_site_redirects=main_site_redirects(inp),
                           dashboard=remote_dashboard_settings(inp, config.host))
    return SetupResult(inputs=inputs, changes=changes, warnings=warnings, service=service, cloudflared_config=cloudflared_path,
                       access_cors=access_cors_settings(inp), main_site_redirects=main_site_redirects(inp))


def _site_of(host: str) -> str:
    """The last two labels: close enough to the registrable domain for a same-site warning."""
    return ".".join(host.split(".")[-2:])


def access_cors_settings(inp: SetupInput) -> dict[str, Any]:
    """What the Access application must answer to a preflight: exactly what the page sends, for the page's origin only."""
    return {"allowed_origins": [inp.page_origin], "allow_credentials": True, "allowed_methods": list(METHODS),
            "allowed_headers": list(REQUEST_HEADERS), "max_age": PREFLIGHT_MAX_AGE}


def main_site_redirects(inp: SetupInput) -> list[str]:
    """Lines for the main site's Pages `_redirects` file, so <site>/chat opens the page on its own origin."""
    if inp.page_on_main_site:
        return []
    return [f"/chat {inp.page_origin}/chat/ 302", f"/chat/* {inp.page_origin}/chat/:splat 302"]


def remote_dashboard_settings(inp: SetupInput, host: str) -> dict[str, Any]:
    """A remotely-managed tunnel's public hostname as the dashboard asks for it, the same rule
    ``api_rule`` writes to a file: the API host name to the tunnel port, Access required for the
    team and AUD, no Host header override."""
    subdomain, _, domain = inp.api_host.partition(".")
    service = service_url(host, inp.tunnel_port)
    return {
        "public_hostname": inp.api_host,
        "subdomain": subdomain,
        "domain": domain,
        "path": "",
        "service": service,
        "service_type": "HTTP",
        "service_url": service.split("://", 1)[1],
        "http_host_header": "",
        "access": {"protect_with_access": True, "team_name": inp.team_name, "aud_tag": inp.aud},
    }


# --------------------------------------------------------------------------------------------
# Earlier answers, read back from the files an earlier run wrote.
# --------------------------------------------------------------------------------------------

def existing_defaults(privchat_config: Path, cloudflared_path: Path | None) -> dict[str, Any]:
    """Answers from an earlier run, so re-running needs no flags and changes nothing."""
    found: dict[str, Any] = {}
    try:
        raw = read_yaml_mapping(privchat_config, "privchat config")
    except SetupError:
        raw = {}
    site = raw.get("site") if isinstance(raw.get("site"), dict) else {}
    access = raw.get("access") if isinstance(raw.get("access"), dict) else {}
    tunnel = raw.get("tunnel") if isinstance(raw.get("tunnel"), dict) else {}
    if isinstance(site.get("main_url"), str):
        found["site_url"] = site["main_url"]
        if isinstance(site.get("url"), str):
            found["page_origin"] = site["url"]
    elif isinstance(site.get("url"), str):
        found["site_url"] = site["url"]  # written before the page had an origin of its own
    hostnames = access.get("public_hostnames")
    if isinstance(hostnames, list) and hostnames and isinstance(hostnames[0], str):
        found["api_host"] = hostnames[0]
    elif isinstance(site.get("api_origin"), str):
        found["api_host"] = urlsplit(site["api_origin"]).hostname
    team_domain = access.get("team_domain")
    if isinstance(team_domain, str):
        host = urlsplit(team_domain if "://" in team_domain else f"https://{team_domain}").hostname or ""
        if host.endswith(ACCESS_DOMAIN_SUFFIX):
            found["team_name"] = host[: -len(ACCESS_DOMAIN_SUFFIX)]
    aud = access.get("aud")
    if isinstance(aud, list) and aud and isinstance(aud[0], str):
        found["aud"] = aud[0]
    if isinstance(tunnel.get("port"), int):
        found["tunnel_port"] = tunnel["port"]
    if cloudflared_path is None and isinstance(tunnel.get("config_file"), str):
        cloudflared_path = Path(os.path.expanduser(tunnel["config_file"]))
    if cloudflared_path is not None:
        found["cloudflared_config"] = cloudflared_path
        try:
            cf = read_yaml_mapping(cloudflared_path, "cloudflared config")
        except SetupError:
            cf = {}
        if isinstance(cf.get("tunnel"), str):
            found["tunnel"] = cf["tunnel"]
        if isinstance(cf.get("credentials-file"), str):
            found["credentials_file"] = cf["credentials-file"]
    return found


def default_answer(key: str, answers: dict[str, Any], earlier: dict[str, Any]) -> Any:
    """The value offered for ``key`` when no flag gives it (None: none to offer): an earlier run's
    answer (``existing_defaults``), else one that follows from the answers so far."""
    default = earlier.get(key)
    if key == "credentials_file" and earlier.get("tunnel") not in (None, answers.get("tunnel")):
        default = None  # the earlier credentials belong to another tunnel
    if key == "credentials_file" and default is None and _UUID.match(str(answers.get("tunnel", ""))):
        default = f"~/.cloudflared/{answers['tunnel']}.json"
    if key == "page_origin" and default is None:
        default = default_page_origin(answers["api_host"])
    if key == "tunnel_port" and default is None:
        default = SCHEMA["tunnel"]["port"].default
    return default
