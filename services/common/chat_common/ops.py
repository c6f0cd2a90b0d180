"""The operational endpoints every hop exposes: /healthz, /readyz and /metrics."""

from collections.abc import Callable, Collection

from flask import Blueprint, Flask, Response, jsonify, request

from chat_common.errors import ApiError, register_error_handlers
from chat_common.hosts import check_host, check_origin, origin_of, request_origin
from chat_common.identity import require_signed_in
from chat_common.metrics import exposition, instrument_requests

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Every API answer is data, never a page: nothing in it may run, be framed or be sniffed.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def init_app(app: Flask, readiness: Callable[[], dict[str, bool]], trusted_user_header: str = "",
             allowed_hosts: Collection[str] | None = None, public_url: str = "",
             allowed_origins: Collection[str] = (), on_refused: Callable[[ApiError], None] | None = None) -> None:
    """What every service's app has: JSON errors (``on_refused`` sees each refusal), request
    metrics, security headers and the operational endpoints; with ``allowed_hosts``, public
    routes answer only for those Host values and refuse cross-site unsafe requests (the
    site's own origin, ``public_url``'s and ``allowed_origins`` may send them); and, with
    ``trusted_user_header``, the signed-in user."""
    register_error_handlers(app, on_refused)
    instrument_requests(app)
    app.url_map.merge_slashes = False  # "//" is a 404 like any unknown path, not a redirect
    if allowed_hosts is not None:
        check_site(app, allowed_hosts, public_url, allowed_origins)
    if trusted_user_header:
        require_signed_in(app, trusted_user_header)

    @app.after_request
    def _secure(response: Response) -> Response:
        # headers.setdefault for each, without the KeyError it raises inside for each one absent
        present = set(response.headers.keys(lower=True))
        for name, value in SECURITY_HEADERS.items():
            if name.lower() not in present:
                response.headers.add(name, value)
        return response

    app.register_blueprint(ops_blueprint(readiness))


def check_site(app: Flask, allowed_hosts: Collection[str], public_url: str, allowed_origins: Collection[str]) -> None:
    """Before any public route: the Host must be allowed (400 host_not_allowed), and an
    unsafe method must come from the site's own pages (403 cross_origin). /healthz, /readyz
    and /metrics are exempt: probes and scrapers address pods by IP."""
    public_origin = origin_of(public_url) if public_url else None

    @app.before_request
    def _same_site() -> None:
        if request.blueprint == "ops":
            return
        check_host(request.host, allowed_hosts)
        if request.method in SAFE_METHODS:
            return
        own = {o for o in (request_origin(request.scheme, request.host), public_origin) if o is not None}
        check_origin(request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"), own, allowed_origins)


def ops_blueprint(readiness: Callable[[], dict[str, bool]]) -> Blueprint:
    """``readiness()`` returns a dict of check name -> bool; all true means ready.

    /healthz answers as long as the process serves requests (the liveness probe);
    /readyz answers 503 while a dependency is missing (the readiness probe).
    """
    ops = Blueprint("ops", __name__)

    @ops.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @ops.get("/readyz")
    def readyz() -> Response:
        checks = readiness()
        ready = all(checks.values())
        response = jsonify({"status": "ready" if ready else "not_ready", "checks": checks})
        if not ready:
            response.status_code = 503
            response.headers["Retry-After"] = "1"
        return response

    @ops.get("/metrics")
    def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, content_type=content_type)

    return ops
