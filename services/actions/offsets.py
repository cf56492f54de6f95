"""Which offset of a partition is safe to commit while commands finish out of order.

Commands of one partition run concurrently, so they finish in any order. The
committed offset must never pass a command that is still running: after a crash
the group resumes from the committed offset, and every command at or after it runs
again (the idempotency record turns a repeat into the recorded result). So the
commit point of a partition is its oldest unfinished offset, or the offset after
the last one seen when nothing is in flight.
"""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    """The in-flight offsets of one partition, in the order they were consumed.

    Offsets must be started in increasing order (the order a partition delivers
    them); `started` refuses one at or below the highest seen, which is how a
    redelivered duplicate is recognised.
    """

    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._finished: set[int] = set()
        self._highest: int | None = None
        self._committable: int | None = None

    @property
    def in_flight(self) -> int:
        """How many started offsets have not finished."""
        return len(self._order) - len(self._finished)

    def started(self, offset: int) -> bool:
        """Record that the command at `offset` began; False if it was seen before."""
        if self._highest is not None and offset <= self._highest:
            return False
        if self._highest is None:
            # Nothing before the first offset seen is ours to commit.
            self._committable = offset
        self._highest = offset
        self._order.append(offset)
        return True

    def finished(self, offset: int) -> int | None:
        """Record that `offset` is done; return the new commit point if it moved.

        Raises KeyError for an offset that was never started or already finished.
        """
        if offset in self._finished or offset not in self._order:
            raise KeyError(f"offset {offset!r} is not in flight")
        self._finished.add(offset)
        while self._order and self._order[0] in self._finished:
            self._finished.discard(self._order.popleft())
        point = self.commit_point()
        if point == self._committable:
            return None
        self._committable = point
        return point

    def commit_point(self) -> int | None:
        """The offset to commit: the oldest unfinished one, or the last seen + 1.

        None before any offset was seen.
        """
        if self._order:
            return self._order[0]
        if self._highest is None:
            return None
        return self._highest + 1
