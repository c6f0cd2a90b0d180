# The seed's /sendmsg and /broadcast: the same worker model and counts as ingest's.
import os

bind = os.environ["SEED_APP_BIND"]
workers = 2
worker_class = "gthread"
threads = 16
timeout = 30
keepalive = 5
