"""kafka-python's producers and consumers, made so that a failed start leaves nothing running.

``KafkaProducer`` and ``KafkaConsumer`` make their network client first, then bootstrap; when
the bootstrap fails (Kafka not up yet, as for any instance started before the brokers), the
constructor raises and the client it made is never closed. Under gevent (ingest and stream)
that client's selector keeps an I/O watcher started on its wake-up socket; once the garbage
collector closes the other end of the socket pair, the watcher is ready on every turn of the
event loop, for good. Measured in an idle ingest worker after three such failures: about
5,000 wake-ups/s, 20 to 30% of a core, until the process ends (under threads: only a leaked
socket pair). So each client a constructor makes is recorded, and closed if it raises.
"""

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

Made = TypeVar("Made")


def build(kind: Callable[..., Made], **settings: object) -> Made:
    """``kind(**settings)`` (``KafkaProducer`` or ``KafkaConsumer``); if it raises, the network
    client it made is closed first."""
    make_client: Callable[..., Any] = vars(kind)["DEFAULT_CONFIG"]["kafka_client"]  # the class's own default
    made: list[Any] = []

    def recorded(**configs: object) -> Any:
        made.append(make_client(**configs))
        return made[-1]

    try:
        return kind(kafka_client=recorded, **settings)
    except BaseException:
        for client in made:
            with contextlib.suppress(Exception):
                client.close()
        raise
