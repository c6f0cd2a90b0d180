"""Entry point: ``gunicorn -c services/bridge/gunicorn.conf.py bridge.wsgi:app``.

gunicorn.conf.py starts the consume loop once the (single) worker runs, and stops it on exit.
"""

from bridge.app import create_app
from bridge.config import Config
from bridge.consumer import Bridge
from bridge.rooms import RoomsApplier
from chat_common.logs import setup_logging

config = Config.from_env()
setup_logging("bridge", config.log_level)
bridge = Bridge(config)
app = create_app(bridge)
app.extensions["chat.rooms"] = RoomsApplier(config, bridge.stopping)
