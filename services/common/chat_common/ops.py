"""The operational endpoints every hop exposes: /healthz, /readyz and /metrics."""

from flask import Blueprint, Response, jsonify

from chat_common.metrics import exposition


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
