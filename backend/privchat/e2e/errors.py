"""The refusal of a request that is not, or not properly, end-to-end encrypted.

Its codes (e2e_* in ``errors.py``'s catalogue) say which way it failed. They are answered plain (no
context exists to seal them under) and carry no content; e2e_key_retired alone is answered sealed
(a context exists), and the answer's meta line names the current key, so the page moves to it and
sends the request again. Only ``GET /api/e2e/key`` still opens with a retired key, so whoever
holds a leaked old key can learn the new public key, and nothing else.
"""

from __future__ import annotations

from ..errors import CodedError


class E2EError(CodedError):
    """``E2EError(E2E_OPEN_FAILED)``: a request that is not, or not properly, end-to-end encrypted."""
