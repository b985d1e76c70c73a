"""What `privchat tunnel setup` asks, prints and tells the owner to do next: its conversation.

The plan (``tunnel_setup.py``) decides from the answers what every file must hold and writes it;
this module is the part the owner reads and answers: the question for each missing value (asked
again when the answer is refused), the summary of what changed, the values to enter in Cloudflare's
dashboard, and the steps that remain, which setup cannot take without the owner's Cloudflare
account. ``main_setup`` is the command: gather the answers, run the plan, print.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from privchat.commands.output import emit
from privchat.commands.tunnel_setup import (
    SetupError,
    SetupInput,
    SetupPaths,
    SetupResult,
    access_cors_settings,
    default_answer,
    default_pages_dir,
    existing_defaults,
    main_site_redirects,
    normalize_api_host,
    normalize_aud,
    normalize_credentials_file,
    normalize_page_origin,
    normalize_port,
    normalize_site_url,
    normalize_team_name,
    normalize_tunnel,
    run_setup,
)


# --------------------------------------------------------------------------------------------
# The questions: flags, earlier answers, and (on a TTY) asking for what is still missing.
# --------------------------------------------------------------------------------------------

FIELDS: list[tuple[str, str, str, Callable[[Any], Any]]] = [
    ("site_url", "--site-url", "Your main site's origin, whose /chat leads to the page (https://example.com)", normalize_site_url),
    ("api_host", "--api-hostname", "API hostname for the tunnel (chat-api.example.com)", normalize_api_host),
    ("page_origin", "--page-origin", "Origin the chat page is served from, its own by default (https://chat.example.com)",
     normalize_page_origin),
    ("tunnel", "--tunnel", "Tunnel name or UUID", normalize_tunnel),
    ("credentials_file", "--credentials-file", "Tunnel credentials file (~/.cloudflared/<UUID>.json)", normalize_credentials_file),
    ("team_name", "--team-name", "Access team name (the 'myteam' of myteam.cloudflareaccess.com)", normalize_team_name),
    ("aud", "--aud", "Access application AUD tag", normalize_aud),
    ("tunnel_port", "--tunnel-port", "privchat's tunnel port (loopback; only cloudflared uses it)", normalize_port),
]


def gather_input(given: dict[str, Any], defaults: dict[str, Any], *, interactive: bool, keep_local: bool,
                 ask: Callable[[str], str] = input, say: Callable[[str], None] = print, remote: bool = False) -> SetupInput:
    """Flags win, then earlier answers; a TTY is asked for what is still missing (or invalid).
    ``remote``: a tunnel run with a token needs no tunnel name and no credentials file."""
    values: dict[str, Any] = {}
    if remote:
        values.update(tunnel="", credentials_file=None)
    for key, flag, prompt, normalize in FIELDS:
        if remote and key in ("tunnel", "credentials_file"):
            continue
        value = given.get(key)
        default = default_answer(key, values, defaults)
        if value is None and not interactive and default is not None:
            value = default
        while True:
            if value is None:
                if not interactive:
                    raise SetupError(f"{prompt[0].lower() + prompt[1:]} ({flag}): missing; pass {flag} (no terminal to ask on).")
                suffix = f" [{default}]" if default is not None else ""
                answer = ask(f"{prompt}{suffix}: ").strip()
                value = answer or default
                if value is None:
                    say(f"{flag} is required.")
                    continue
            try:
                values[key] = normalize(value)
                break
            except SetupError as exc:
                if not interactive or key in given and given[key] is not None and value == given[key]:
                    raise
                say(str(exc))
                value = None
    return SetupInput(keep_local=keep_local, remote=remote, **values)


# --------------------------------------------------------------------------------------------
# What remains for the owner: commands and dashboard clicks, in order.
# --------------------------------------------------------------------------------------------

def remaining_steps(inp: SetupInput, result: SetupResult, privchat_config: Path) -> list[str]:
    """The steps after this run: a tunnel run with a token is set up in the dashboard, a local one by commands."""
    if result.cloudflared_config is None:
        return remote_next_steps(inp, privchat_config, result.service)
    return next_steps(inp, result.cloudflared_config, privchat_config)


def next_steps(inp: SetupInput, cloudflared_path: Path, privchat_config: Path) -> list[str]:
    """The exact commands and dashboard clicks that remain; setup cannot do them without your account."""
    name = inp.tunnel
    cfg = str(cloudflared_path)
    return [
        "Log in to Cloudflare once (writes ~/.cloudflared/cert.pem): `cloudflared tunnel login`",
        f"Create the tunnel if it does not exist yet (`cloudflared tunnel list` shows it): `cloudflared tunnel create {name}`"
        f" -- it writes the credentials file; setup expects it at {inp.credentials_file}",
        f"Point the API hostname at the tunnel (a proxied CNAME): `cloudflared tunnel route dns {name} {inp.api_host}`",
        "In the Cloudflare Zero Trust dashboard, Access > Applications (see tunnel/ACCESS.md): one self-hosted application "
        f"covering {inp.api_host}; a policy with action Allow and include 'Emails' = your own email; a session duration such as "
        f"24h or 1 month (730h); its Application Audience (AUD) Tag must be {inp.aud} and the team domain {inp.team_domain}.",
        "In that application's Advanced settings > Cross-Origin Resource Sharing (CORS) settings, let Access answer the page's "
        "preflights (do NOT turn on 'Bypass OPTIONS requests to origin': cloudflared's own Access check refuses every request "
        f"without a token, preflights included): {describe_access_cors(access_cors_settings(inp))}.",
        f"Start privchat (`privchat --config {privchat_config} serve`; cloudflared reaches it on tunnel port {inp.tunnel_port}), "
        f"then try the tunnel in the foreground: `cloudflared --config {cfg} tunnel run`",
        f"Run the tunnel at boot as a system service: `sudo cloudflared --config {cfg} service install` -- "
        "under sudo ~ means root's home, so the absolute --config path is required; the Linux installer copies the file to "
        "/etc/cloudflared/config.yml, so after re-running setup copy it there again and `sudo systemctl restart cloudflared`.",
        *page_steps(inp),
        f"Pair your phone: `privchat --config {privchat_config} pair`",
    ]


def remote_next_steps(inp: SetupInput, privchat_config: Path, service: str) -> list[str]:
    """What is left for a remotely-managed tunnel: everything about the tunnel is in the dashboard."""
    return [
        "In the Cloudflare Zero Trust dashboard, Networks > Tunnels: create a tunnel of type Cloudflared (or open the one "
        "you have) and install its connector on this machine with the command the dashboard shows "
        "(`sudo cloudflared service install <TOKEN>`, or `cloudflared tunnel run --token <TOKEN>` in the foreground). "
        "The token is the tunnel's secret: keep it out of shell history and files others can read.",
        f"In that tunnel's Public Hostname tab, add the public hostname printed above ({inp.api_host} to {service}, "
        "'Protect with Access' on); no other public hostname of any tunnel may point at privchat's ports.",
        "In Access > Applications (see tunnel/ACCESS.md): one self-hosted application "
        f"covering {inp.api_host}; a policy with action Allow and include 'Emails' = your own email; a session duration such as "
        f"24h or 1 month (730h); its Application Audience (AUD) Tag must be {inp.aud} and the team domain {inp.team_domain}.",
        "In that application's Advanced settings > Cross-Origin Resource Sharing (CORS) settings, let Access answer the page's "
        "preflights (do NOT turn on 'Bypass OPTIONS requests to origin': cloudflared's own Access check refuses every request "
        f"without a token, preflights included): {describe_access_cors(access_cors_settings(inp))}.",
        f"Start privchat (`privchat --config {privchat_config} serve`; cloudflared reaches it on tunnel port {inp.tunnel_port}); "
        "`privchat doctor` sees a cloudflared run with a token, and says what it cannot check from here.",
        *page_steps(inp),
        f"Pair your phone: `privchat --config {privchat_config} pair`",
    ]


def describe_access_cors(settings: dict[str, Any]) -> str:
    return (f"Access-Control-Allow-Origin: {', '.join(settings['allowed_origins'])} (not 'Allow all origins'); "
            "Access-Control-Allow-Credentials: on; "
            f"Access-Control-Allow-Methods: {', '.join(settings['allowed_methods'])}; "
            f"Access-Control-Allow-Headers: {', '.join(settings['allowed_headers'])}; "
            f"Access-Control-Max-Age: {settings['max_age']}")


def page_steps(inp: SetupInput) -> list[str]:
    if inp.page_on_main_site:
        return ["Deploy the site so the page's config.json and _headers go live, then open "
                f"{inp.page_origin}/chat/ once and sign in to Access at {inp.api_origin} when the page asks."]
    redirects = "; ".join(f"`{line}`" for line in main_site_redirects(inp))
    return [
        f"Deploy the page as its own Cloudflare Pages project (build output pages/dist) with the custom domain "
        f"{urlsplit(inp.page_origin).hostname}, so the device keys live on an origin no other script shares.",
        f"On your main site ({inp.site_url}) link to {inp.page_origin}/chat/, or add these lines to its _redirects file: {redirects}",
        f"Open {inp.page_origin}/chat/ once and sign in to Access at {inp.api_origin} when the page asks.",
    ]


# --------------------------------------------------------------------------------------------
# The summary printed at the end, and the command.
# --------------------------------------------------------------------------------------------

def render_result(result: SetupResult) -> str:
    lines: list[str] = []
    out = lines.append
    for change in result.changes:
        line = f"{change.status:>12}  {change.what}: {change.path}"
        if change.backup:
            line += f" (backup: {change.backup})"
        out(line)
        for note in change.notes:
            out(f"{'':>14}note: {note}")
    if not result.changed:
        out("Nothing changed: every file already matches these answers.")
    for warning in result.warnings:
        out(f"warning: {warning}")
    out("")
    if result.dashboard:
        board = result.dashboard
        access = board["access"]
        out(f"Zero Trust > Networks > Tunnels > (your tunnel) > Public Hostname > Add a public hostname "
            f"for {board['public_hostname']}:")
        for name, value in (("Subdomain", board["subdomain"]), ("Domain", board["domain"]), ("Path", "(empty)"),
                            ("Service Type", board["service_type"]), ("Service URL", board["service_url"])):
            out(f"  {name + ':':<35}{value}")
        out(f"  (the service is {board['service']}: privchat's tunnel.port, never server.port)")
        out("  Additional application settings:")
        out(f"    {'HTTP Settings > HTTP Host Header:':<34}(empty: never set one for privchat)")
        out(f"    {'Access > Protect with Access:':<34}on")
        out(f"    {'Access > Team name:':<34}{access['team_name']}")
        out(f"    {'Access > AUD Tag:':<34}{access['aud_tag']}")
        out("No cloudflared config was written: a tunnel run with a token reads its rules from the dashboard.")
        out("")
    if result.access_cors:
        cors = result.access_cors
        out("Cloudflare Access > Applications > (the API application) > Advanced settings > CORS settings:")
        for name, value in (("Access-Control-Allow-Origin", ", ".join(cors["allowed_origins"])),
                            ("Access-Control-Allow-Credentials", "on"),
                            ("Access-Control-Allow-Methods", ", ".join(cors["allowed_methods"])),
                            ("Access-Control-Allow-Headers", ", ".join(cors["allowed_headers"])),
                            ("Access-Control-Max-Age", str(cors["max_age"])),
                            ("Bypass OPTIONS requests to origin", "off")):
            out(f"  {name + ':':<35}{value}")
        out("")
    if result.main_site_redirects:
        out("Lines for your main site's _redirects file (so /chat opens the page on its own origin):")
        for line in result.main_site_redirects:
            out(f"  {line}")
        out("")
    out("Remaining steps:")
    for number, step in enumerate(result.next_steps, 1):
        out(f"  {number}. {step}")
    return "\n".join(lines)


def main_setup(args: Any) -> int:
    """The `privchat tunnel setup` command. Refused input raises SetupError (the CLI reports it, exit 2)."""
    from privchat.config import default_config_path

    privchat_config = Path(os.path.abspath(os.path.expanduser(str(args.config or default_config_path()))))
    explicit_cf = Path(os.path.abspath(os.path.expanduser(args.cloudflared_config))) if args.cloudflared_config else None
    interactive = not args.yes and sys.stdin.isatty() and not args.json
    defaults = existing_defaults(privchat_config, explicit_cf)
    cloudflared_path = explicit_cf or defaults.get("cloudflared_config") or privchat_config.parent / "cloudflared.yml"
    given = {"site_url": args.site_url, "api_host": args.api_hostname, "tunnel": args.tunnel,
             "credentials_file": args.credentials_file, "team_name": args.team_name, "aud": args.aud,
             "page_origin": args.page_origin, "tunnel_port": args.tunnel_port}
    remote = bool(getattr(args, "remote", False))
    if remote and (args.tunnel or args.credentials_file or args.cloudflared_config):
        raise SetupError("--remote: a remotely-managed tunnel is named and configured in the dashboard; drop --tunnel, "
                         "--credentials-file and --cloudflared-config (no cloudflared config is written in this mode).")
    inp = gather_input(given, defaults, interactive=interactive, keep_local=args.keep_local,
                       say=lambda s: print(s, file=sys.stderr), remote=remote)
    pages_dir = Path(args.pages_dir).expanduser() if args.pages_dir else default_pages_dir()
    result = run_setup(inp, SetupPaths(privchat_config, Path(cloudflared_path), pages_dir), dry_run=args.dry_run)
    result.next_steps = remaining_steps(inp, result, privchat_config)
    emit(args, result.to_json(), render_result(result))
    return 0
