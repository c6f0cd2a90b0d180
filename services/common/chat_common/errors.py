"""Every error is JSON: {"error": {"code": "<slug>", "message": "<for a person>"}}."""

from flask import jsonify
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

    def __init__(self, status, code, message, retry_after=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def json_error(status, code, message, retry_after=None):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, int(retry_after)))
    response.headers["Cache-Control"] = "no-store"
    return response


def register_error_handlers(app):
    @app.errorhandler(ApiError)
    def _api_error(error):
        return json_error(error.status, error.code, error.message, error.retry_after)

    @app.errorhandler(HTTPException)
    def _http_error(error):
        code, message = _HTTP_MESSAGES.get(error.code, (error.name.lower().replace(" ", "_"), error.description))
        return json_error(error.code, code, message)

    @app.errorhandler(Exception)
    def _unexpected(error):
        app.logger.exception("unhandled error")
        return json_error(500, "internal_error", "Something went wrong on our side; try again.")
