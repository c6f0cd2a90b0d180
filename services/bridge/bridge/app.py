"""The bridge app factory: only /healthz, /readyz and /metrics; the work runs in consumer.Bridge."""

from flask import Flask

from chat_common.errors import register_error_handlers
from chat_common.metrics import instrument_requests
from chat_common.ops import ops_blueprint


def create_app(bridge):
    app = Flask(__name__)
    register_error_handlers(app)
    instrument_requests(app)
    app.register_blueprint(ops_blueprint(bridge.ready))
    app.extensions["chat.bridge"] = bridge
    return app
