"""An instance started before Kafka is reachable (any pod that starts before the brokers) idles
once it has connected. kafka-python's constructors used to leave the network client of a failed
start open: under gevent its watcher on a half-closed socket pair then woke the event loop
hundreds of thousands of times a second, a fifth to a third of a core per ingest or stream
worker, for good (chat_common/kafka_clients.py)."""

import os
import subprocess
import sys

from support import free_port

# Under gevent as ingest and stream run: ingest's producer and the log reader each fail to start
# three times against an address where nothing listens; then how often the event loop turns in a
# second of nothing to do.
AT_REST = r"""
from gevent import monkey

monkey.patch_all()

import gc
import time

import gevent
from kafka.errors import KafkaError

from chat_common.kafka_reader import log_reader
from ingest.config import Config
from ingest.producer import Producer

producer = Producer(Config.from_env())
for attempt in range(3):
    assert not producer.warm_up()
    time.sleep(Producer.RECONNECT_COOLDOWN_S)
    try:
        log_reader(Config.from_env().kafka_bootstrap_servers, "at-rest", bootstrap_timeout_ms=300)
    except KafkaError:
        pass
gc.collect()  # what closes the other end of a leaked socket pair
gevent.sleep(0.5)
loop = gevent.get_hub().loop
before = loop.iteration
gevent.sleep(1)
print(loop.iteration - before)
"""


def test_failed_starts_against_an_unreachable_kafka_leave_the_worker_idle():
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}", INGEST_PRODUCE_TIMEOUT_S="1")
    result = subprocess.run([sys.executable, "-c", AT_REST], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    # At rest the loop turns for timers only (a few dozen times a second); with a client left
    # open it turned about 175,000 times a second here.
    assert int(result.stdout.split()[-1]) < 1_000, result.stdout
