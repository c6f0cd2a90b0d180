"""What a stream request asks for, read from its path, query and headers: anything malformed
is a JSON 400 (errors.py), never a 500."""

from flask import g, request

from chat_common.messages import is_valid_room, normalize_user
from stream import errors

MAX_ID_DIGITS = 19  # a Kafka offset is a signed 64-bit number


def room(name: str) -> str:
    if not is_valid_room(name):
        raise errors.invalid_room()
    return name


def decimal(raw: str, most_digits: int = MAX_ID_DIGITS) -> int | None:
    """``raw`` as a number if it is 1 to ``most_digits`` ASCII digits, else None.
    ``str.isdigit`` alone also accepts superscripts and circled digits, which int() refuses."""
    if not (0 < len(raw) <= most_digits and raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def count(name: str, default: int, limit: int) -> int:
    """The query parameter ``name``: a whole number up to ``limit`` (absent: ``default``)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    value = decimal(raw)
    if value is None or value > limit:
        raise errors.invalid_count(name, limit)
    return value


def message_id(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    value = decimal(raw)
    if value is None:
        raise errors.invalid_message_id(name)
    return value


def position(raw: str | None, name: str) -> int | None:
    """A resume position: a message id, or -1, the position before a partition's first
    record (what a connect hands a reader while nothing was ever written there)."""
    return -1 if raw == "-1" else message_id(raw, name)


def resume_position() -> int | None:
    """Last-Event-ID (a reconnecting EventSource), else ?last_event_id= (a first connect)."""
    last_id = position(request.headers.get("Last-Event-ID"), "Last-Event-ID")
    if last_id is None:
        last_id = position(request.args.get("last_event_id"), "last_event_id")
    return last_id


def user() -> str | None:
    signed_in: str | None = g.get("user")
    if signed_in:  # named by the sign-in proxy in front
        return signed_in
    raw = request.args.get("user")
    if raw is None or raw.strip() == "":
        return None
    name: str | None = normalize_user(raw)
    if name is None:
        raise errors.invalid_user()
    return name
