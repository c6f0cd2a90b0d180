"""The operational endpoints every hop exposes: /healthz, /readyz and /metrics."""

from flask import Blueprint, Response, g, jsonify, request

from chat_common.errors import ApiError, register_error_handlers
from chat_common.messages import normalize_user
from chat_common.metrics import exposition, instrument_requests


# Every API answer is data, never a page: nothing in it may run, be framed or be sniffed.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def init_app(app, readiness, trusted_user_header=""):
    """What every service's app has: JSON errors, request metrics, security headers and
    the operational endpoints; and, with ``trusted_user_header``, the signed-in user."""
    register_error_handlers(app)
    instrument_requests(app)
    app.url_map.merge_slashes = False  # "//" is a 404 like any unknown path, not a redirect
    if trusted_user_header:
        require_signed_in(app, trusted_user_header)

    @app.after_request
    def _secure(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.register_blueprint(ops_blueprint(readiness))


def require_signed_in(app, header):
    """Behind an authenticating proxy that names the signed-in user in ``header``: every
    public request must carry it, and it is the user's name (``g.user``) wherever a name
    is used; names sent in bodies or queries are ignored. The operational endpoints stay
    open to probes and scrapers. Only safe when nothing reaches the service around the
    proxy (SECURITY.md)."""

    @app.before_request
    def _signed_in():
        if request.blueprint == "ops":
            return
        raw = request.headers.get(header, "").strip()
        if not raw:
            raise ApiError(401, "unauthenticated", "Sign in first: this service only answers signed-in people.")
        user = normalize_user(raw)
        if user is None:
            raise ApiError(403, "invalid_identity", "Your sign-in name cannot be used as a chat name "
                           "(1 to 32 printable characters).")
        g.user = user


def ops_blueprint(readiness):
    """``readiness()`` returns a dict of check name -> bool; all true means ready.

    /healthz answers as long as the process serves requests (the liveness probe);
    /readyz answers 503 while a dependency is missing (the readiness probe).
    """
    ops = Blueprint("ops", __name__)

    @ops.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @ops.get("/readyz")
    def readyz():
        checks = readiness()
        ready = all(checks.values())
        response = jsonify({"status": "ready" if ready else "not_ready", "checks": checks})
        if not ready:
            response.status_code = 503
            response.headers["Retry-After"] = "1"
        return response

    @ops.get("/metrics")
    def metrics():
        body, content_type = exposition()
        return Response(body, content_type=content_type)

    return ops
