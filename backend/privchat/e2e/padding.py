"""Bodies padded to a size class inside the seal (docs/E2E.md, "Padding").

A sealed body's length is otherwise its content's length plus 16: a chat message, a search query,
a title or a settings change would each tell the edge its size to the byte. Padded, a body says
only its class: 1 KiB, then powers of two up to 1 MiB, then whole MiB. The checks on the way in
are strict (the class must be exactly the one the content gives, the padding all zero), so
nothing can ride in the padding and nobody can mark a request by padding it more.
"""

from __future__ import annotations

from .suite import BODY_FLOOR, BODY_POWER_LIMIT, LENGTH_BYTES, TAG_BYTES

OVERHEAD = LENGTH_BYTES + TAG_BYTES


def sealed_size(content_length: int) -> int:
    """The size class, in sealed bytes, of a body whose content is ``content_length`` bytes."""
    needed = content_length + OVERHEAD
    if needed <= BODY_POWER_LIMIT:
        return max(BODY_FLOOR, 1 << (needed - 1).bit_length())
    return -(-needed // BODY_POWER_LIMIT) * BODY_POWER_LIMIT


def pad(content: bytes) -> bytes:
    """The plaintext to seal: the length, the content, zeros up to the class (less the tag)."""
    size = sealed_size(len(content)) - TAG_BYTES
    return len(content).to_bytes(LENGTH_BYTES, "big") + content + bytes(size - LENGTH_BYTES - len(content))


def unpad(padded: bytes) -> bytes:
    """The content of an opened body; ValueError when its padding is not exactly as ``pad`` makes it."""
    if len(padded) < LENGTH_BYTES:
        raise ValueError("shorter than its length prefix")
    length = int.from_bytes(padded[:LENGTH_BYTES], "big")
    if LENGTH_BYTES + length > len(padded):
        raise ValueError("its length prefix is longer than the body")
    if len(padded) + TAG_BYTES != sealed_size(length):
        raise ValueError("it is not padded to its size class")
    end = LENGTH_BYTES + length
    if padded[end:].count(0) != len(padded) - end:
        raise ValueError("its padding is not all zero")
    return padded[LENGTH_BYTES:end]
