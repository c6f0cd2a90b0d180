"""Every error is JSON: {"error": {"code": "<slug>", "message": "<for a person>"}}.

A view refuses by raising an ``ApiError``, made by one of the named factories below when the
refusal is shared by several routes or services (``redis_unavailable(retry_after_s)`` ...).
"""

from collections.abc import Callable

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

# Messages for the errors that Flask and werkzeug raise before a view runs.
_HTTP_MESSAGES = {
    400: ("bad_request", "The request could not be understood."),
    404: ("not_found", "There is nothing at this address."),
    405: ("method_not_allowed", "This address does not accept that method."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Send the body as application/json."),
}


class ApiError(Exception):
    """Raised by a view to answer with a JSON error; nothing has been changed."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def redis_unavailable(retry_after_s: float) -> ApiError:
    """Redis did not answer (down, timed out, or refusing writes when full): the checks it
    keeps cannot be made, so the request is refused rather than let through unchecked."""
    return ApiError(503, "redis_unavailable", "The chat cannot take this right now; try again shortly.",
                    retry_after=retry_after_s)


def kafka_unavailable(retry_after_s: float, doing: str = "stored") -> ApiError:
    return ApiError(503, "kafka_unavailable", f"Messages cannot be {doing} right now; try again shortly.",
                    retry_after=retry_after_s)


def rate_limited(message: str, retry_after_s: float) -> ApiError:
    return ApiError(429, "rate_limited", message, retry_after=retry_after_s)


def host_not_allowed() -> ApiError:
    return ApiError(400, "host_not_allowed", "This service does not answer for that host name.")


def cross_origin() -> ApiError:
    return ApiError(403, "cross_origin", "Messages can only be posted from this site's own pages.")


def invalid_json() -> ApiError:
    return ApiError(400, "invalid_json", "The body is not valid JSON.")


def json_error(status: int, code: str, message: str, retry_after: float | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, int(retry_after)))
    response.headers["Cache-Control"] = "no-store"
    return response


def register_error_handlers(app: Flask, on_refused: Callable[[ApiError], None] | None = None) -> None:
    """JSON for every error; ``on_refused(error)`` is called for each ApiError (to count it)."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        if on_refused is not None:
            on_refused(error)
        return json_error(error.status, error.code, error.message, error.retry_after)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code, message = _HTTP_MESSAGES.get(status, (error.name.lower().replace(" ", "_"), error.description or ""))
        return json_error(status, code, message)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        app.logger.exception("unhandled error")
        return json_error(500, "internal_error", "Something went wrong on our side; try again.")
