"""The one error shape of the API: ``{"error": {"code": ..., "message": ...}}``.

Codes are stable strings the page switches on; messages are sentences a person can act on.
``app.py`` answers every ``CodedError`` (see ``errors.py``) and every framework error through here.
"""

from __future__ import annotations

from quart import Response, jsonify

from ..errors import CodedError


def error_response(status: int, code: str, message: str, *, retry_after: int | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def api_error_response(error: CodedError) -> Response:
    return error_response(error.status, error.code, error.message, retry_after=error.retry_after, headers=error.headers)


# Default codes for HTTP errors raised by the framework itself (unknown route, wrong method, ...).
HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request could not be understood."),
    404: ("not_found", "There is nothing at this address."),
    405: ("method_not_allowed", "This address does not accept that method."),
    408: ("timeout", "The request took too long to arrive."),
    413: ("payload_too_large", "The request body is larger than the server accepts."),
    415: ("unsupported_media_type", "Send the body as application/json."),
    429: ("rate_limited", "Too many requests; wait a moment and try again."),
}
