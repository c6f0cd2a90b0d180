# The seed's flask-sse stream: the same worker model and counts as stream's.
import os

bind = os.environ["SEED_STREAM_BIND"]
workers = 2
worker_class = "gevent"
worker_connections = 10000
timeout = 30
keepalive = 5
