"""Adapters that let the core's state live in Faust tables."""

from __future__ import annotations

from collections import Counter

from ..core.windows import HoppingWindows, WindowCount

__all__ = ["FaustWindowCounts"]


class FaustWindowCounts:
    """:class:`~wirewatch.core.windows.WindowCounts` over a tumbling Faust table of ``step``-long buckets.

    A hopping window's count is the sum of its buckets. Counts added are held
    until :meth:`apply`, like :class:`~wirewatch.core.engine.HeldWrites`: a batch
    of briefs on one topic adds to its bucket with one changelog record.
    """

    def __init__(self, table, windows: HoppingWindows) -> None:
        self.table = table
        self.windows = windows
        self._held: Counter[tuple[str, float]] = Counter()

    def add(self, key: str, timestamp: float) -> None:
        self._held[(key, timestamp - timestamp % self.windows.step)] += 1

    def counts(self, key: str, timestamp: float) -> list[WindowCount]:
        ranges = self.windows.ranges(timestamp)
        held = self._held
        buckets = {
            start: self.table.relative_to(start)[key].value() + held.get((key, start), 0)
            for start in dict.fromkeys(step for window_start, _ in ranges for step in self.windows.steps(window_start))
        }
        return [
            WindowCount(start, end, sum(buckets[step] for step in self.windows.steps(start))) for start, end in ranges
        ]

    def forget_before(self, cutoff: float) -> None:
        # A bucket goes once every window holding it ended before the cutoff.
        # Store keys are (key, (start, end)); a RocksDB store gives them back as lists.
        last_end = self.windows.size - 0.1
        table = self.table.table
        for stored in [k for k in table.data.keys() if k[1][0] + last_end < cutoff]:
            del table[stored]
        for held in [held for held in self._held if held[1] + last_end < cutoff]:
            del self._held[held]

    def discard(self) -> None:
        """Forget the held counts: the table stays as it was."""
        self._held.clear()

    def apply(self) -> None:
        """Add the held counts to the table."""
        for (key, start), count in self._held.items():
            self.table.relative_to(start)[key] += count
        self._held.clear()
