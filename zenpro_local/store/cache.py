"""Values computed from the state database, kept until the database changes.

The admin API reads far more often than it writes: every request loads its
caller's grants, and dashboards poll the same lists. A :class:`StateCache`
keeps such results and drops all of them as soon as the database may have
changed: at once for the daemon's own writes, and at the next request for
commits of other connections (see :meth:`Store.version`).
"""

from __future__ import annotations

from typing import Any, Callable, Hashable


class StateCache:
    """A bounded map of computed values, emptied on every change of state.

    ``version`` returns a token that differs after any write to the
    database (see :meth:`Store.version`). Each :meth:`get` compares it with
    the token of the cached entries and drops them all when it moved.

    Args:
        version: returns the database's current change token.
        in_transaction: returns whether a transaction is open; nothing is
            stored then, so a rolled-back write leaves no value behind.
        capacity: total size of the entries kept, in the unit callers give
            to :meth:`put` (bytes for response bodies). The oldest entries
            go first when it is exceeded.
    """

    def __init__(
        self,
        version: Callable[[], Hashable],
        in_transaction: Callable[[], bool],
        capacity: int,
    ):
        self._version = version
        self._in_transaction = in_transaction
        self.capacity = capacity
        self._entries: dict[Hashable, tuple[Any, int]] = {}
        self._size = 0
        self._entries_version: Hashable = None

    def get(self, key: Hashable) -> Any | None:
        """Return the value stored under ``key``, or None when there is none."""
        if not self._entries:
            return None
        if self._version() != self._entries_version:
            self.clear()
            return None
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def put(self, key: Hashable, value: Any, size: int = 1) -> None:
        """Store ``value`` under ``key`` for as long as the state is unchanged.

        Values larger than a quarter of the capacity are not stored, so one
        large page cannot push out everything else.
        """
        if size > self.capacity // 4 or self._in_transaction():
            return
        version = self._version()
        if version != self._entries_version:
            self.clear()
            self._entries_version = version

        previous = self._entries.pop(key, None)
        if previous is not None:
            self._size -= previous[1]
        self._entries[key] = (value, size)
        self._size += size

        while self._size > self.capacity:
            oldest = next(iter(self._entries))
            self._size -= self._entries.pop(oldest)[1]

    def clear(self) -> None:
        self._entries.clear()
        self._size = 0

    def __len__(self) -> int:
        return len(self._entries)
