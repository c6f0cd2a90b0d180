"""Which client addresses took part in a room in the last day: what the room directory
ranks rooms by first, so that one address cannot crowd it (stream/directory.py).

An address takes part by an admitted post (ingest, in its admission call) or by opening a
stream to a room that has addresses already (stream, on connect): only a post starts a
room's addresses, so made-up room names cost Redis nothing. Redis keeps a
keyed digest of the address, never the address: HMAC-SHA-256 under ``SESSION_SECRET``
(which ingest and stream already share), 16 hex digits. An IPv6 client counts by its /64
network, which one subscriber gets whole, so rotating addresses inside it is one address.

The Redis layout and the Lua that keeps it (lua/participants.lua):
- ``addresses_key(room)``: sorted set, member = address digest, score = when it last took
  part (epoch s); the key expires a day after its last addition;
- ``ROOMS_BY_ADDRESSES_KEY``: sorted set, member = room, score = distinct addresses in the
  last day × 2^32 + when the newest took part (epoch s), so its top is the rooms most
  people took part in, the most recent first among equals;
- ``ROOMS_TOOK_PART_KEY``: sorted set, member = room, score = when an address last took part
  there: rooms idle for a day are found by score and dropped from both.
"""

import hashlib
import hmac
import ipaddress

from chat_common import keys
from chat_common.lua import lua_source

WINDOW_S = 86_400  # an address counts in a room for a day after it last took part
ROOMS_BY_ADDRESSES_KEY = "chat:rooms:addresses"
ROOMS_TOOK_PART_KEY = "chat:rooms:took-part"

# Put before a script that records or counts participation (chat_common.lua.lua_source).
PARTICIPANTS_LUA = "chat_common/participants.lua"
_DOMAIN = b"room-directory\0"  # the digest differs from any other use of the secret


def addresses_key(room: str) -> str:
    return keys.room_key(room, "addresses")


def keys_of(room: str) -> list[str]:
    """The keys that recording or counting ``room``'s addresses touches, in the scripts' order
    (the directory's two sets: the room's partition's in cluster mode, keys.py)."""
    partition = keys.partition_of(room)
    return [addresses_key(room), keys.rooms_by_addresses_key(partition), keys.rooms_took_part_key(partition)]


def address_tag(secret: str, address: str | None) -> str:
    """The digest Redis keeps for a client address (an IPv6 one: its /64 network). Without
    ``SESSION_SECRET`` the HMAC has an empty key, and an IPv4 address can be found again by
    trying all 2^32 (SECURITY.md)."""
    canonical = address or "unknown"
    try:
        ip = ipaddress.ip_address(canonical)
    except ValueError:
        pass
    else:
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        if mapped is not None:
            canonical = str(mapped)
        elif ip.version == 6:
            canonical = str(ipaddress.ip_network(f"{ip}/64", strict=False))
        else:
            canonical = str(ip)
    return hmac.new(secret.encode(), _DOMAIN + canonical.encode(), hashlib.sha256).hexdigest()[:16]


def lua_with_participants(name: str) -> str:
    """The script ``name`` ("<package>/<file>.lua") after the participants library."""
    return lua_source(PARTICIPANTS_LUA, name)
