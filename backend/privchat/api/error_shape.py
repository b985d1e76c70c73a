"""The one error shape of the API: ``{"error": {"code": ..., "message": ...}}``.

Codes are stable strings the page switches on; messages are sentences a person can act on. Both
come from the catalogue in ``errors.py``; ``app.py`` answers every ``CodedError`` and every
framework error through here.
"""

from __future__ import annotations

from quart import Response, jsonify

from ..errors import (BAD_REQUEST, METHOD_NOT_ALLOWED, NOT_FOUND, PAYLOAD_TOO_LARGE, RATE_LIMITED, TIMEOUT,
                      UNSUPPORTED_MEDIA_TYPE, Code, CodedError)


def api_error_response(error: CodedError, *, status: int | None = None) -> Response:
    """The answer for ``error``; ``status`` only for an HTTP error of the framework (http_error) answered with its own."""
    response = jsonify({"error": error.as_json()})
    response.status_code = status or error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


# The entries for HTTP errors raised by the framework itself (unknown route, wrong method, ...).
HTTP_CODES: dict[int, Code] = {
    400: BAD_REQUEST,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    408: TIMEOUT,
    413: PAYLOAD_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
    429: RATE_LIMITED,
}
