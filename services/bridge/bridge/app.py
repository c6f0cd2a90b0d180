"""The bridge app factory: only /healthz, /readyz and /metrics; the work runs in consumer.Bridge."""

from flask import Flask

from bridge.consumer import Bridge
from chat_common.ops import init_app


def create_app(bridge: Bridge) -> Flask:
    app = Flask(__name__)
    init_app(app, bridge.ready)
    app.extensions["chat.bridge"] = bridge
    return app
