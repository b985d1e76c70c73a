"""One way for every owner command to print a result and to fail.

A result is a payload (what ``--json`` prints) and the text a person reads; a failure is a
``PrivchatError`` raised anywhere below a command, reported once by ``cli.main`` through
``report_failure``: the sentence on stderr under the command's name, or ``{"ok": false, "error"}``
on stdout with ``--json``. Either way nothing a device or a file chose can drive the terminal
(``json_for_terminal`` escapes control and bidi characters).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..auth.device_names import json_for_terminal
from ..errors import PrivchatError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """The result: JSON with --json, else the text."""
    print(json_for_terminal(payload) if getattr(args, "json", False) else text)


def report_failure(args: argparse.Namespace, error: PrivchatError, *, usage: bool) -> int:
    """The failure, reported once; ``usage``: refused input (exit 2) rather than a failed action (exit 1)."""
    if getattr(args, "json", False):
        print(json_for_terminal({"ok": False, "error": error.message}))
    else:
        print(f"{getattr(args, 'command', 'privchat')}: {error.message}", file=sys.stderr)
    return EXIT_USAGE if usage else EXIT_FAIL
