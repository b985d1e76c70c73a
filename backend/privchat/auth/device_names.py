"""Device names are chosen by the device and printed in the owner's terminal: keep them inert.

`privchat pair --wait` prints "Paired: <name>  fingerprint …" and `privchat devices list` prints the
name beside the fingerprint the owner compares with the page. A name holding ESC (an ANSI sequence),
the 8-bit CSI, a carriage return, or a bidirectional override could erase or rewrite that line, or
make another fingerprint appear where the real one stands. So such names are refused where they
come in (registration, rename), and whatever an older privchat stored is escaped where it goes
out (``for_terminal``), so an old name cannot do it either.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from ..errors import INVALID_DEVICE_NAME, CodedError

MAX_NAME_LENGTH = 100

# Text-direction controls: embeddings and overrides, isolates, and the marks.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e" "\u2066\u2067\u2068\u2069" "\u200e\u200f\u061c")


def refused_character(name: str) -> str | None:
    """The first character a device name may not hold: a control character (Unicode category Cc,
    which covers C0, DEL and C1) or a text-direction control; None if there is none."""
    for char in name:
        if unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS:
            return char
    return None


def check_device_name(name: str) -> str:
    """The name with outer spaces removed, or a refusal (invalid_device_name) with a sentence."""
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= MAX_NAME_LENGTH:
        raise CodedError(INVALID_DEVICE_NAME, most=MAX_NAME_LENGTH)
    bad = refused_character(cleaned)
    if bad is not None:
        raise CodedError(INVALID_DEVICE_NAME, f"A device name may not contain control or text-direction characters "
                         f"(it holds U+{ord(bad):04X}); use letters, digits, spaces and punctuation.")
    return cleaned


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def for_terminal(text: str) -> str:
    """``text`` with every character a terminal could act on written as a visible escape.

    Everything that is not printable (controls, format characters such as the bidi controls,
    line and paragraph separators, unassigned code points) becomes ``\\xNN``/``\\uNNNN``; a
    backslash is doubled, so an escape in the output always means a character was escaped.
    """
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == " " or char.isprintable():
            out.append(char)
        else:
            out.append(_escape(char))
    return "".join(out)


def json_for_terminal(payload: Any) -> str:
    """Indented JSON whose strings carry no character a terminal could act on.

    ``ensure_ascii=False`` keeps names readable, but would let C1 and bidi controls through;
    those are written as JSON ``\\u`` escapes instead, which any JSON reader turns back.
    """
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    out = []
    for char in text:
        if char == "\n" or char == " " or char.isprintable():
            out.append(char)
        else:
            encoded = char.encode("utf-16-be")
            out.extend(f"\\u{int.from_bytes(encoded[i:i + 2], 'big'):04x}" for i in range(0, len(encoded), 2))
    return "".join(out)
