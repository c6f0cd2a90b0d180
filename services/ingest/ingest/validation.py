"""The public contract's rules for a posted message. Every refusal is an ApiError."""

import json
import re
import unicodedata

from flask import Request

from chat_common import errors
from chat_common.errors import ApiError
from chat_common.messages import MAX_USER_CHARS, is_valid_room, normalize_user

MAX_BODY_BYTES = 16 * 1024
MAX_TEXT_CHARS = 4000
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")


def check_room(room: str) -> None:
    if not is_valid_room(room):
        raise ApiError(400, "invalid_room", "Room names are 1 to 64 characters of a-z, 0-9, '-' and '_'.")


def parse_body(request: Request) -> dict[str, object]:
    """The JSON object of the body; 415 for another content type, 400 for broken JSON
    (including nesting too deep for the parser: RecursionError, 8,000 levels measured)."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the message as application/json.")
    raw = request.get_data()  # werkzeug refuses more than MAX_CONTENT_LENGTH with 413
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise errors.invalid_json() from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", 'The body must be a JSON object such as {"user": ..., "text": ...}.')
    return body


def clean_user(value: object) -> str:
    user = normalize_user(value)
    if user is None:
        raise ApiError(422, "invalid_user", f"A user name is 1 to {MAX_USER_CHARS} printable characters.")
    return user


def _is_allowed_in_text(char: str) -> bool:
    return char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cs")


def clean_text(value: object) -> str:
    if not isinstance(value, str):
        raise ApiError(422, "invalid_text", "The message text is required, as a string.")
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ApiError(422, "invalid_text", "The message is empty.")
    if len(text) > MAX_TEXT_CHARS:
        raise ApiError(422, "text_too_long", f"A message is at most {MAX_TEXT_CHARS} characters ({len(text)} sent).")
    # A printable text has no control or surrogate character: only others are looked at one by one.
    if not text.isprintable() and not all(map(_is_allowed_in_text, text)):
        raise ApiError(422, "invalid_text", "The message contains control characters.")
    return text


def clean_message_id(value: str) -> int:
    """A message id from a path: its Kafka offset in decimal."""
    if not value.isdigit() or not value.isascii() or len(value) > 19:
        raise ApiError(400, "invalid_message_id", "A message id is a decimal number.")
    return int(value)


def clean_client_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not CLIENT_ID_PATTERN.match(value):
        raise ApiError(422, "invalid_client_id",
                       "client_id is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'.")
    return value
