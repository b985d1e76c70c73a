"""A small static server for the built page (pages/dist) that applies the rules of its `_headers`
file the way Cloudflare Pages does, so local runs and tests see the real CSP.

`privchat site` uses `serve_site`; tests can use `create_site_app` directly.

What it does, like Pages:
- `_headers`: rules of a path pattern line (`*` is a splat that matches anything, `:name` one
  path segment; an absolute URL pattern matches on its path) followed by indented `Name: value`
  lines; `! Name` removes a header set by an earlier rule. Every matching rule applies, in file
  order; a header set by several rules is joined with ", ".
- `/chat` redirects to `/chat/`, `/chat/` serves `chat/index.html`, `/x/index.html` redirects to `/x/`.
- `_headers`, `_redirects` and dot files are never served; paths cannot leave the folder.
It listens on loopback only.

One difference, for local use: `privchat site` adds the configured server's origin (``server.host``
and ``server.port``, and ``site.api_origin`` when set) to the CSP's connect-src
(``connect_origins``). A page built with the default CSP names http://127.0.0.1:8765 only, so with
another ``server.port`` the browser would block every request to a server that runs, and the page
could only say it was not reachable.

`privchat site verify URL` (`verify_site`) is the other direction: it fetches the deployed page's
files and compares each with the local build (pages/dist/chat/integrity.json, written by
pages/build.mjs with the same SHA-256 values the service worker checks).
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable
from urllib.parse import unquote, urlsplit

from quart import Quart, Response, request

from ..addresses import host_port, http_url, is_loopback_host
from ..config import SITE_PORT, Config
from ..errors import PrivchatError

if TYPE_CHECKING:
    import httpx

__all__ = ["HeaderRule", "parse_headers_file", "headers_for_path", "add_connect_src", "create_site_app", "serve_site",
           "is_loopback_host", "api_origins_to_allow",
           "SiteVerifyError", "FileCheck", "verify_site", "page_origin"]

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
}
HIDDEN_NAMES = {"_headers", "_redirects", "_routes.json", "_worker.js"}


@dataclass
class HeaderRule:
    pattern: str
    regex: re.Pattern[str]
    set: list[tuple[str, str]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    path = pattern
    if "://" in pattern:
        path = urlsplit(pattern).path or "/"
    out = []
    for token in re.split(r"(\*|:[A-Za-z_][A-Za-z0-9_]*)", path):
        if token == "*":
            out.append(".*")
        elif token.startswith(":") and len(token) > 1:
            out.append("[^/]+")
        else:
            out.append(re.escape(token))
    return re.compile("^" + "".join(out) + "$")


def parse_headers_file(text: str) -> list[HeaderRule]:
    """Parses the Cloudflare Pages `_headers` format. Raises ValueError on a malformed line."""
    rules: list[HeaderRule] = []
    current: HeaderRule | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0] in " \t":
            if current is None:
                raise ValueError(f"_headers line {number}: a header line comes before any path")
            if stripped.startswith("!"):
                current.remove.append(stripped[1:].strip().lower())
                continue
            name, sep, value = stripped.partition(":")
            name = name.strip()
            if not sep or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
                raise ValueError(f"_headers line {number}: expected 'Name: value', got {stripped!r}")
            current.set.append((name, value.strip()))
        else:
            current = HeaderRule(pattern=stripped, regex=_pattern_regex(stripped))
            rules.append(current)
    return rules


def headers_for_path(rules: list[HeaderRule], path: str) -> list[tuple[str, str]]:
    """The headers every matching rule gives `path`, in file order; repeated names joined with ", "."""
    merged: dict[str, tuple[str, str]] = {}
    for rule in rules:
        if not rule.regex.match(path):
            continue
        for name in rule.remove:
            merged.pop(name, None)
        for name, value in rule.set:
            key = name.lower()
            if key in merged:
                merged[key] = (merged[key][0], f"{merged[key][1]}, {value}")
            else:
                merged[key] = (name, value)
    return list(merged.values())


def add_connect_src(csp: str, origins: list[str] | tuple[str, ...]) -> str:
    """The CSP value with each of ``origins`` in its connect-src (once; nothing else changes).
    A policy without connect-src is left alone: default-src decides there, and widening it is not ours to do."""
    directives = [part.strip() for part in csp.split(";")]
    for index, directive in enumerate(directives):
        name, _, sources = directive.partition(" ")
        if name.lower() != "connect-src":
            continue
        listed = sources.split()
        listed += [origin for origin in origins if origin not in listed]
        directives[index] = f"{name} {' '.join(listed)}"
        break
    return "; ".join(part for part in directives if part)


def _content_type(path: Path) -> str:
    return TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def create_site_app(directory: Path, connect_origins: list[str] | tuple[str, ...] = ()) -> Quart:
    """A Quart app that serves `directory` (a built pages/dist) with its `_headers` applied, and
    ``connect_origins`` (the configured API origins) added to the CSP's connect-src."""
    root = Path(directory).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; build the page first: (cd pages && npm ci && npm run build)")
    app = Quart(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 0

    def load_rules() -> list[HeaderRule]:
        file = root / "_headers"
        if not file.is_file():
            return []
        return parse_headers_file(file.read_text(encoding="utf-8"))

    rules = load_rules()
    app.extensions["privchat_site"] = {"root": root, "rules": rules}

    def resolve(url_path: str) -> tuple[str, Path | None, str | None]:
        """('file', path, None) | ('redirect', None, location) | ('missing', None, None)."""
        decoded = unquote(url_path)
        if "\x00" in decoded or "\\" in decoded:
            return "missing", None, None
        parts = [p for p in decoded.split("/") if p not in ("", ".")]
        if any(p == ".." or p.startswith(".") or p in HIDDEN_NAMES for p in parts):
            return "missing", None, None
        target = root.joinpath(*parts).resolve() if parts else root
        try:
            target.relative_to(root)
        except ValueError:
            return "missing", None, None
        if target.is_dir():
            if not url_path.endswith("/"):
                return "redirect", None, url_path + "/"
            index = target / "index.html"
            return ("file", index, None) if index.is_file() else ("missing", None, None)
        if target.is_file():
            if target.name == "index.html":
                return "redirect", None, url_path[: -len("index.html")]
            return "file", target, None
        html = target.with_name(target.name + ".html")
        if parts and html.is_file():
            return "file", html, None
        return "missing", None, None

    def with_headers(response: Response, path: str) -> Response:
        for name, value in headers_for_path(rules, path):
            if connect_origins and name.lower() == "content-security-policy":
                value = add_connect_src(value, connect_origins)
            response.headers[name] = value
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.route("/", defaults={"subpath": ""}, methods=["GET", "HEAD"])
    @app.route("/<path:subpath>", methods=["GET", "HEAD"])
    async def serve(subpath: str) -> Response:
        path = request.path
        kind, file, location = resolve(path)
        if kind == "redirect":
            query = request.query_string.decode("latin-1")
            response = Response("", status=308, headers={"Location": location + (f"?{query}" if query else "")})
            return with_headers(response, path)
        if kind == "file" and file is not None:
            body = file.read_bytes()
            response = Response(body, status=200, content_type=_content_type(file))
            return with_headers(response, path)
        not_found = root / "404.html"
        if not_found.is_file():
            response = Response(not_found.read_bytes(), status=404, content_type="text/html; charset=utf-8")
        else:
            response = Response("Not found\n", status=404, content_type="text/plain; charset=utf-8")
        return with_headers(response, path)

    @app.errorhandler(405)
    async def method_not_allowed(_error: Exception) -> Response:
        return Response("Only GET and HEAD are served here.\n", status=405,
                        headers={"Allow": "GET, HEAD"}, content_type="text/plain; charset=utf-8")

    return app


async def serve_site(directory: Path, host: str = "127.0.0.1", port: int = SITE_PORT,
                     shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
                     connect_origins: list[str] | tuple[str, ...] = ()) -> None:
    """Serve the built page with Hypercorn on a loopback address until shutdown_trigger returns."""
    if not is_loopback_host(host):
        raise ValueError(
            f"{host!r} is not a loopback address: the local page server listens on loopback only "
            "(127.0.0.1, ::1 or localhost); publish the page on Cloudflare Pages instead."
        )
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config as HypercornConfig

    app = create_site_app(Path(directory), connect_origins)
    config = HypercornConfig()
    config.bind = [host_port(host, port)]
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 2.0
    if shutdown_trigger is None:
        await hypercorn_serve(app, config)
    else:
        await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)


def api_origins_to_allow(config: Config) -> list[str]:
    """The origins a page served by `privchat site` must be able to reach: the local server
    (server.host:server.port) and the configured API origin (site.api_origin), each once."""
    return list(dict.fromkeys([http_url(config.host, config.port), config.api_origin.rstrip("/")]))


# verify ----------------------------------------------------------------------------------------
INTEGRITY_FILE = Path("chat") / "integrity.json"
VERIFY_TIMEOUT_SECONDS = 20.0
VERIFY_MAX_BYTES = 16 * 2**20


class SiteVerifyError(PrivchatError):
    """A sentence: the check could not be made at all (no build, a bad URL)."""


@dataclass
class FileCheck:
    path: str
    status: str  # ok | differs | missing
    expected_sha256: str
    actual_sha256: str | None = None
    http_status: int | None = None
    note: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "status": self.status, "expected_sha256": self.expected_sha256,
                "actual_sha256": self.actual_sha256, "http_status": self.http_status, "note": self.note}


def _sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def page_origin(url: str) -> str:
    """The origin of the deployed page from `https://host/chat/` (or `https://host`); http on loopback only."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SiteVerifyError(f"{url!r} is not a page address; give the page's URL, e.g. https://chat.example.com/chat/")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise SiteVerifyError(f"{url!r} is plain http: check the deployed page over https (http only for a loopback address)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise SiteVerifyError(f"{url!r}: give the page's address without credentials, query or fragment")
    if parts.path.rstrip("/") not in ("", "/chat"):
        raise SiteVerifyError(f"{url!r}: the page lives at /chat/ of its site; give https://<host>/chat/")
    return f"{parts.scheme}://{parts.netloc}"


def load_integrity(directory: Path) -> dict[str, str]:
    """path -> base64 SHA-256 of every file to compare, from the local build."""
    file = Path(directory) / INTEGRITY_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SiteVerifyError(f"{file} is missing; build the page first: (cd pages && npm ci && npm run build)") from exc
    except (OSError, ValueError) as exc:
        raise SiteVerifyError(f"{file} cannot be read ({exc}); build the page again") from exc
    files = data.get("files") if isinstance(data, dict) else None
    extra = data.get("verify_only", {}) if isinstance(data, dict) else None
    if data.get("format") != "privchat-page-integrity" or not isinstance(files, dict) or not files or not isinstance(extra, dict):
        raise SiteVerifyError(f"{file} is not a privchat page integrity file; build the page again")
    # sw.js and config.json are not pinned by the worker: compare them with the folder as it is now
    # (config.json may have been written after the build).
    for path in list(extra):
        local = Path(directory) / path.lstrip("/")
        if isinstance(path, str) and path.startswith("/chat/") and ".." not in path and local.is_file():
            extra[path] = _sha256_b64(local.read_bytes())
    merged = {**files, **extra}
    for path, digest in merged.items():
        if not (isinstance(path, str) and path.startswith("/chat/") and isinstance(digest, str)):
            raise SiteVerifyError(f"{file}: unexpected entry {path!r}; build the page again")
    return merged


def verify_site(url: str, directory: Path, *, client: httpx.Client | None = None) -> list[FileCheck]:
    """Fetches every file the build pinned (and sw.js, config.json) from the deployed site; compares each."""
    import httpx

    origin = page_origin(url)
    expected = load_integrity(directory)
    own = client is None
    http = client or httpx.Client(timeout=VERIFY_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False,
                                  headers={"Cache-Control": "no-cache", "User-Agent": "privchat-site-verify"})
    results: list[FileCheck] = []
    try:
        for path, digest in expected.items():
            check = FileCheck(path=path, status="differs", expected_sha256=digest)
            try:
                with http.stream("GET", origin + path) as response:
                    check.http_status = response.status_code
                    if response.status_code in (404, 410):
                        check.status, check.note = "missing", f"HTTP {response.status_code}"
                    elif response.status_code != 200:
                        where = response.headers.get("location")
                        check.note = f"HTTP {response.status_code}" + (f" to {where}" if where else "")
                    else:
                        body = bytearray()
                        for chunk in response.iter_bytes():
                            body += chunk
                            if len(body) > VERIFY_MAX_BYTES:
                                raise SiteVerifyError(f"{origin + path} sent more than {VERIFY_MAX_BYTES} bytes; not a file of this page")
                        check.actual_sha256 = _sha256_b64(bytes(body))
                        check.status = "ok" if check.actual_sha256 == digest else "differs"
            except httpx.HTTPError as exc:
                if not results:  # the first file: the site is not there at all
                    raise SiteVerifyError(f"{origin}: cannot fetch the page ({type(exc).__name__}: {exc})") from exc
                check.note = f"{type(exc).__name__}: {exc}"
            results.append(check)
    finally:
        if own:
            http.close()
    return results
