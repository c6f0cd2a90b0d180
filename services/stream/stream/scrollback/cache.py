"""The chat messages a worker last read from the log, by (partition, offset).

What a record of the log holds never changes, so readers paging back through the same room,
as a room's members do, read Kafka once between them. Deletions and retried copies are
filtered at every page (shown.py), never cached."""

from collections import OrderedDict

from chat_common.messages import Message


class MessageCache:
    """Bounded to ``size`` messages, least recently used out first (0: keeps nothing)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._messages: OrderedDict[tuple[int, int], Message] = OrderedDict()

    def get(self, partition: int, offset: int) -> Message | None:
        message = self._messages.get((partition, offset))
        if message is not None:
            self._messages.move_to_end((partition, offset))
        return message

    def holds(self, partition: int, offsets: list[int]) -> bool:
        """Every one of ``offsets`` is cached (and now recently used)."""
        return all(self.get(partition, offset) is not None for offset in offsets)

    def put(self, partition: int, offset: int, message: Message | None) -> None:
        if self.size <= 0 or message is None:
            return
        self._messages[(partition, offset)] = message
        self._messages.move_to_end((partition, offset))
        while len(self._messages) > self.size:
            self._messages.popitem(last=False)
