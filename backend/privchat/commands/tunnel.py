"""The `tunnel` and `service` command groups, registered into the main privchat CLI.

Kept apart from the main CLI so the reach-it-from-anywhere parts can change without touching the
server's commands; the main CLI calls ``add_commands(subparsers)`` and runs ``args.func(args)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from privchat.commands.output import emit
from privchat.config import load_config
from privchat.commands.service import main_install, main_uninstall
from privchat.commands.tunnel_setup_text import main_setup
from privchat.tunnel.validate import PrivchatPorts, validate_cloudflared_file

SETUP_EPILOG = """\
Every value can be given as a flag; on a terminal, missing ones are asked for, and values from an
earlier run are offered as defaults (so re-running with --yes changes nothing). Files written:
the cloudflared config, the privchat config (merged, other keys kept) and the page's
public/chat/config.json and _headers CSP. Each changed file is backed up as <file>.bak-<time>.
The tunnel credentials file is never read or written; only its path is used.
"""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `tunnel setup|validate` and `service install|uninstall`."""
    _add_tunnel(subparsers)
    _add_service(subparsers)


def _add_tunnel(subparsers: argparse._SubParsersAction) -> None:
    tunnel = subparsers.add_parser("tunnel", help="set up and check the cloudflared tunnel",
                                   description="Set up and check the cloudflared tunnel that lets your phone reach privchat.")
    tunnel.set_defaults(func=lambda args: _help(tunnel))
    commands = tunnel.add_subparsers(title="tunnel commands", metavar="COMMAND")

    setup = commands.add_parser(
        "setup", help="write the cloudflared config and point privchat and the page at the API hostname",
        description="Write the cloudflared config (API hostname -> privchat's tunnel port, Access checked per rule, 404 for the rest), "
                    "merge the tunnel settings into the privchat config, point the page at the API, and print the steps left, "
                    "including the CORS values to enter in the Access application.",
        epilog=SETUP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    setup.add_argument("--site-url", metavar="ORIGIN", help="your main site's https origin, whose /chat leads to the page (https://example.com)")
    setup.add_argument("--api-hostname", metavar="HOST", help="public API host name for the tunnel, bare (chat-api.example.com)")
    setup.add_argument("--tunnel", metavar="NAME_OR_UUID", help="the cloudflared tunnel's name or UUID")
    setup.add_argument("--credentials-file", metavar="PATH",
                       help="the tunnel credentials JSON (~/.cloudflared/<UUID>.json; default for a UUID tunnel); only its path is used")
    setup.add_argument("--team-name", metavar="TEAM", help="Cloudflare Access team name, the 'myteam' of myteam.cloudflareaccess.com")
    setup.add_argument("--aud", metavar="TAG", help="the Access application's Application Audience (AUD) tag")
    setup.add_argument("--page-origin", metavar="ORIGIN",
                       help="https origin the chat page is served from (default: https://chat.<API host's domain>, an origin of its own; "
                            "give your site's origin to serve the page there instead)")
    setup.add_argument("--tunnel-port", type=str, metavar="PORT",
                       help="loopback port the cloudflared rule points at (default: tunnel.port from the config, 8766)")
    setup.add_argument("--cloudflared-config", metavar="PATH",
                       help="where to write the cloudflared config (default: tunnel.config_file, else cloudflared.yml beside the privchat config)")
    setup.add_argument("--pages-dir", metavar="DIR", help="the site's pages/ folder (default: pages/ of this repository; skipped if absent)")
    setup.add_argument("--keep-local", action="store_true",
                       help="keep the loopback origins in server.allowed_origins and the page's CSP connect-src "
                            "(for trying the deployed page against a local backend)")
    setup.add_argument("--remote", action="store_true",
                       help="a remotely-managed tunnel (created in the dashboard, run with `cloudflared tunnel run --token …`): "
                            "write no cloudflared config, print the public hostname, service and Access settings to enter in the dashboard")
    setup.add_argument("--dry-run", action="store_true", help="show what would change and write nothing")
    setup.add_argument("--json", action="store_true", help="print a machine-readable summary (never prompts)")
    setup.add_argument("--yes", "--non-interactive", dest="yes", action="store_true",
                       help="never prompt: use flags and values from an earlier run, fail on anything missing")
    setup.set_defaults(func=main_setup)

    validate = commands.add_parser(
        "validate", help="check a cloudflared config against cloudflared's rules",
        description="Check a cloudflared config the way cloudflared does (ingress order, catch-all, hostnames, services, "
                    "path regexes, per-rule Access) plus privchat's rules: no ignored top-level access block, and every rule "
                    "that reaches privchat points at tunnel.port, requires Access and keeps the Host header.")
    validate.add_argument("file", nargs="?", metavar="FILE", help="config to check (default: tunnel.config_file from the privchat config)")
    validate.add_argument("--json", action="store_true", help="print {file, valid, errors} as JSON")
    validate.set_defaults(func=main_validate)


def _add_service(subparsers: argparse._SubParsersAction) -> None:
    service = subparsers.add_parser("service", help="run privchat at login as a user service (systemd or launchd)",
                                    description="Install or remove a per-user service that runs `privchat serve`: "
                                                "a systemd user unit on Linux, a launchd agent on macOS. Nothing is enabled silently.")
    service.set_defaults(func=lambda args: _help(service))
    commands = service.add_subparsers(title="service commands", metavar="COMMAND")
    for name, func, text in (
        ("install", main_install, "write the unit (or agent) and print the commands that enable it"),
        ("uninstall", main_uninstall, "remove the unit (or agent) and print the commands that stop it"),
    ):
        sub = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sub.add_argument("--dry-run", action="store_true", help="print what would be written or removed, change nothing")
        sub.add_argument("--json", action="store_true", help="print a machine-readable result")
        sub.add_argument("--home", metavar="DIR", help="act as if this were the home directory (tests, other accounts)")
        sub.add_argument("--unit-dir", metavar="DIR", help="write the unit/plist into this directory instead of the standard one")
        sub.add_argument("--platform", choices=("linux", "macos"), help="generate for this platform instead of the current one")
        sub.set_defaults(func=func)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def main_validate(args: argparse.Namespace) -> int:
    """Exit 0 when valid, 1 with the problems listed (2 when the privchat config itself is broken)."""
    config = load_config(args.config)  # a broken config: ConfigError, reported by the CLI (exit 2)
    path = Path(args.file).expanduser() if args.file else config.tunnel_config_file
    errors = validate_cloudflared_file(path, PrivchatPorts.of(config))
    text = "\n".join([f"{path}: {len(errors)} problem(s):", *(f"  - {error}" for error in errors)]) if errors \
        else f"{path}: valid cloudflared config."
    emit(args, {"file": str(path), "valid": not errors, "errors": errors}, text)
    return 1 if errors else 0
