"""The public contract's rules for a posted message. Every refusal is an ApiError."""

import json
import re
import unicodedata
from urllib.parse import urlsplit

from chat_common.errors import ApiError
from chat_common.messages import MAX_USER_CHARS, is_valid_room, normalize_user

MAX_BODY_BYTES = 16 * 1024
MAX_TEXT_CHARS = 4000
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")


def check_room(room):
    if not is_valid_room(room):
        raise ApiError(400, "invalid_room", "Room names are 1 to 64 characters of a-z, 0-9, '-' and '_'.")


def check_origin(headers, host, allowed_origins):
    """Refuse a browser's cross-site POST (a page elsewhere posting as its visitor).

    Browsers name the page's origin in ``Origin`` and mark cross-site requests with
    ``Sec-Fetch-Site``. A request without them (curl, scripts, server-side clients) passes.
    The origin's host name must be the request's own (ports are not compared: proxies
    differ in whether the Host they pass on keeps it) or one of ``allowed_origins``."""
    origin = headers.get("Origin")
    if origin is not None and origin in allowed_origins:
        return
    cross_site = headers.get("Sec-Fetch-Site") == "cross-site"
    if origin is not None and not cross_site:
        try:
            own_host = urlsplit("//" + host).hostname if host else None
            cross_site = own_host is None or urlsplit(origin).hostname != own_host
        except ValueError:  # a malformed Origin or Host
            cross_site = True
    if cross_site:
        raise ApiError(403, "cross_origin", "Messages can only be posted from this site's own pages.")


def parse_body(request):
    """The JSON object of the body; 415 for another content type, 400 for broken JSON."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the message as application/json.")
    raw = request.get_data(cache=False)  # werkzeug refuses more than MAX_CONTENT_LENGTH with 413
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", 'The body must be a JSON object such as {"user": ..., "text": ...}.')
    return body


def clean_user(value):
    user = normalize_user(value)
    if user is None:
        raise ApiError(422, "invalid_user", f"A user name is 1 to {MAX_USER_CHARS} printable characters.")
    return user


def _is_allowed_in_text(char):
    return char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cs")


def clean_text(value):
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


def clean_message_id(value):
    """A message id from a path: its Kafka offset in decimal."""
    if not value.isdigit() or not value.isascii() or len(value) > 19:
        raise ApiError(400, "invalid_message_id", "A message id is a decimal number.")
    return int(value)


def clean_client_id(value):
    if value is None:
        return None
    if not isinstance(value, str) or not CLIENT_ID_PATTERN.match(value):
        raise ApiError(422, "invalid_client_id", "client_id is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'.")
    return value
