"""privchat's errors: one root, coded refusals, and the one error shape of the API.

As in py_webauthn, every failure privchat raises on purpose is a ``PrivchatError`` and says in a
sentence what went wrong; ``cli.main`` catches the root once and prints that sentence, so no
command prints and exits on its own, and anything else is a bug that keeps its traceback.

A ``CodedError`` is a refusal a client acts on: a stable ``code`` the page switches on, the
sentence, the HTTP status and, where waiting helps, ``retry_after``. It knows no web framework:
``llm/`` and ``auth/`` raise their own leaves, and one handler in ``app.py`` turns any of them
into the API's shape ``{"error": {"code": ..., "message": ...}}``. ``ApiError`` is the leaf for
refusals made by the HTTP layer itself (status first, as it reads in a route). The shape itself
lives in ``api/error_shape.py``; this module imports no web framework, so the config, the storage
and the model engine can raise these without depending on one.
"""

from __future__ import annotations



class PrivchatError(Exception):
    """The root of every failure privchat raises on purpose; ``message`` is a sentence for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CodedError(PrivchatError):
    """A refusal with a stable ``code`` for the page, a sentence for people, and its HTTP status."""

    status = 400

    def __init__(self, code: str, message: str, status: int | None = None, *, retry_after: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        if status is not None:
            self.status = status
        self.retry_after = retry_after
        self.headers = headers or {}


class ApiError(CodedError):
    """A refusal made by the HTTP layer itself: ``ApiError(404, "not_found", "…")``."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(code, message, status, retry_after=retry_after, headers=headers)
