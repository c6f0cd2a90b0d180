"""Which site a request is for (Host) and which page sent it (Origin).

A DNS-rebinding page (evil.example, resolved to 127.0.0.1 or a LAN address) is same-origin
with itself, so only the Host header tells its requests apart: public routes answer only
for ``ALLOWED_HOSTS``. A page on another origin, including another port of the same host
(a page at http://127.0.0.1:9999 posting to the gateway at :8080), is cross-site: unsafe
requests from it are refused.
"""

import functools
from collections.abc import Collection
from typing import NamedTuple
from urllib.parse import urlsplit

from chat_common import errors

DEFAULT_PORTS = {"http": 80, "https": 443}
# Parsed values kept per process: every unsafe request parses its Host, each allowed host and
# an origin or two, the same few strings each time (about 15 us of a POST, measured in process).
# Bounded: a header is at most 8,190 bytes (gunicorn), so at most about 2 MB each.
PARSED_KEPT = 256


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int


@functools.lru_cache(maxsize=PARSED_KEPT)
def _host_port(value: str) -> tuple[str, int | None] | None:
    """(host name lowercased, port or None) of a Host header value, None if malformed."""
    try:
        parts = urlsplit("//" + value)
        return (parts.hostname, parts.port) if parts.hostname and parts.netloc == value else None
    except ValueError:
        return None


@functools.lru_cache(maxsize=PARSED_KEPT)
def origin_of(url: str) -> Origin | None:
    """The (scheme, host, port) of an origin or URL; None for "null" or anything malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    return Origin(parts.scheme, parts.hostname, port)


def check_host(host: str, allowed: Collection[str]) -> None:
    """Refuse a Host this service does not answer for (400 host_not_allowed). An allowed
    entry without a port allows every port of that host; ``*`` allows any host."""
    if "*" in allowed:
        return
    parsed = _host_port(host)
    if parsed is None:
        raise errors.host_not_allowed()
    name, port = parsed
    for entry in allowed:
        wanted = _host_port(entry)
        if wanted is not None and wanted[0] == name and wanted[1] in (None, port):
            return
    raise errors.host_not_allowed()


def check_origin(origin: str | None, fetch_site: str | None, own: Collection[Origin],
                 allowed_origins: Collection[str]) -> None:
    """Refuse a browser's cross-site unsafe request (a page elsewhere acting as its visitor).

    Browsers name the page's origin in ``Origin`` and mark cross-site requests with
    ``Sec-Fetch-Site``. A request without them (curl, scripts, server-side clients) passes.
    The origin's scheme, host and port must be one of ``own`` (the request's own, and the
    configured public URL's) or the origin one of ``allowed_origins``."""
    if origin is not None and origin in allowed_origins:
        return
    cross_site = fetch_site == "cross-site"
    if origin is not None and not cross_site:
        cross_site = origin_of(origin) not in own
    if cross_site:
        raise errors.cross_origin()


def request_origin(scheme: str, host: str) -> Origin | None:
    """The origin a request was addressed to: its scheme (as the trusted proxy saw it) and
    its Host, whose port is the scheme's default when absent."""
    return origin_of(f"{scheme}://{host}")
