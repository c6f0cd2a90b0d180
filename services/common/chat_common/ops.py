"""The operational endpoints every hop exposes: /healthz, /readyz and /metrics."""

from flask import Blueprint, Response, jsonify

from chat_common.errors import register_error_handlers
from chat_common.identity import require_signed_in
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
        # headers.setdefault for each, without the KeyError it raises inside for each one absent
        present = set(response.headers.keys(lower=True))
        for name, value in SECURITY_HEADERS.items():
            if name.lower() not in present:
                response.headers.add(name, value)
        return response

    app.register_blueprint(ops_blueprint(readiness))


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
