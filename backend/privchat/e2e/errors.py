"""One refusal per way a sealed request can fail, each with its code and sentence.

They are answered plain (no context exists to seal them under) and carry no content.
"""

from __future__ import annotations

from ..errors import CodedError


class E2EError(CodedError):
    """A request that is not, or not properly, end-to-end encrypted (400)."""

    status = 400


class E2ERequired(E2EError):
    def __init__(self) -> None:
        super().__init__("e2e_required", "This request is not end-to-end encrypted, and privchat accepts only "
                                         "sealed requests; reload the page to get a version that seals them.")


class E2EVersionOld(E2EError):
    def __init__(self) -> None:
        super().__init__("e2e_version_old", "This page seals requests in an older version of privchat's end-to-end "
                                            "encryption than the server speaks; reload the page to get the current one.")


class E2EMalformed(E2EError):
    def __init__(self, detail: str) -> None:
        super().__init__("e2e_malformed", f"The Privchat-E2E header is not valid: {detail}.")


class E2EKeyUnknown(E2EError):
    def __init__(self) -> None:
        super().__init__("e2e_key_unknown", "This request is sealed to a server key the server no longer holds "
                                            "(rotated longer ago than the grace period); pair this device again.")


class E2EKeyRetired(E2EError):
    """Opened with a retired key on a route other than the key route: answered sealed (a context
    exists), and the answer's meta line names the current key, so the page moves to it and sends
    the request again. Only ``GET /api/e2e/key`` still opens with a retired key, so whoever holds a
    leaked old key can learn the new public key, and nothing else."""

    status = 409

    def __init__(self) -> None:
        super().__init__("e2e_key_retired", "This request was sealed to a server key that was replaced; "
                                            "the page moves to the new key and sends it again.")


class E2EOpenFailed(E2EError):
    def __init__(self) -> None:
        super().__init__("e2e_open_failed", "The request body did not open: it was altered on the way, or sealed "
                                            "for another key, path or device.")
