"""Entry point: ``gunicorn -c services/ingest/gunicorn.conf.py ingest.wsgi:app``."""

from chat_common.logs import setup_logging
from ingest.app import create_app
from ingest.config import Config

config = Config.from_env()
setup_logging("ingest", config.log_level)
app = create_app(config)
