"""Paging back past the Redis window: a room's older messages read from Kafka itself.

The bridge keeps, per room, an index of the room's offsets (bridge/index.py). A page
binary-searches it for the ``count`` offsets before ``below`` whose message was not deleted
and fetches exactly those records, so its cost follows the page, not the traffic of the
other rooms in the partition. That lookup is one Lua call (lookup.py), which also checks
the client's share (budget.py) and names the next older page's offsets, for the read ahead
(readahead.py): a page the cache (cache.py) holds costs this call and the window's
MULTI/EXEC (history.py), two Redis round trips. A page reads the log (records.py) for
``page_ms`` at most (at least one run of records, unless the cache gave it the newest part
of the page and its time went waiting for the room): past that it answers what it has, with
a cursor to continue from, so a reader sees a first part at once where the records are slow
to read. Below ``indexed:<partition>`` (just after Redis came back empty, while the bridge
re-indexes in the background) the page scans the log backwards instead, within
``scan_records`` per request, and hands back a cursor where it stopped.

In a worker, one page of a room reads the log at a time (turns.py), and the next finds what
it read in the cache; a page the cache holds whole does not wait for the room. Deletions (by
the lookup) and retried copies are filtered at every page (shown.py), never cached; offsets
retention removed are dropped before the cache is asked.

Bounds: each worker has ``readers`` Kafka consumers, taken for one read at a time, and a
read waits at most ``wait_s`` for one (then 503); a page answered from the cache takes none
(readers.py). A client address may cause ``client_records`` records read per
``client_window_s`` (then 429).
"""

from stream.scrollback.budget import ClientBudget, ClientLimited
from stream.scrollback.cache import MessageCache
from stream.scrollback.lookup import LOOKUP_EXAMINED, LOOKUP_SCRIPT, IndexLookup, Lookup
from stream.scrollback.page import Scrollback
from stream.scrollback.readers import Busy, ReaderPool
from stream.scrollback.records import Older

__all__ = [
    "LOOKUP_EXAMINED",
    "LOOKUP_SCRIPT",
    "Busy",
    "ClientBudget",
    "ClientLimited",
    "IndexLookup",
    "Lookup",
    "MessageCache",
    "Older",
    "ReaderPool",
    "Scrollback",
]
