"""Entry point: ``gunicorn -c services/stream/gunicorn.conf.py stream.wsgi:app``.

gunicorn.conf.py starts the worker's hub (its Redis subscription) and drains it on SIGTERM.
"""

from chat_common.logs import setup_logging
from stream.app import create_app
from stream.config import Config

config = Config.from_env()
setup_logging("stream", config.log_level)
app = create_app(config)
