"""The objects a stream worker's routes share, built once by create_app."""

from dataclasses import dataclass

from flask import current_app

from stream.config import Config
from stream.directory import Directory
from stream.history import History
from stream.hub import Hub
from stream.limits import OpenStreams, StreamOpens
from stream.presence import Presence
from stream.private import Guard

EXTENSION = "chat.stream"


@dataclass(frozen=True)
class Services:
    config: Config
    hub: Hub
    history: History
    presence: Presence
    directory: Directory
    opens: StreamOpens
    open_streams: OpenStreams
    private: Guard  # private rooms: members only


def services() -> Services:
    """The current app's Services (inside a request)."""
    found: Services = current_app.extensions[EXTENSION]
    return found
