"""Hopping event-time windows, with the same ranges as Faust's ``HoppingWindow``.

The worker counts in Faust's windowed tables, one tumbling ``step``-long
bucket per event, and adds a window's buckets when it reads it (one write per
event instead of one per window that holds it); offline commands (``wirewatch
cluster``, ``backtest``) count with :class:`HoppingCounts`, which gives the
same numbers for the same events. A window is ``[start, start + size)``;
Faust writes its end as ``start + size - 0.1``, and so does this module, so that
ranges compare equal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

__all__ = ["HoppingWindows", "WindowCount", "WindowCounts", "HoppingCounts"]


@dataclass(frozen=True)
class HoppingWindows:
    """Windows of ``size`` seconds starting every ``step`` seconds."""

    size: float
    step: float

    def __post_init__(self) -> None:
        # Faust's HoppingWindow builds its ranges with range(int(start), ..., int(step)): a fractional
        # step would raise (0.5 s) or give windows that do not line up with its buckets (100.5 s).
        if self.step != int(self.step) or self.size != int(self.size):
            raise ValueError("window size and step must be whole seconds, as Faust's windows count them")
        if self.step <= 0 or self.size < self.step:
            raise ValueError("window step must be positive and no larger than the window size")
        if self.size % self.step:
            raise ValueError("window size must be a whole number of steps")

    def steps(self, start: float) -> list[float]:
        """Starts of the ``step``-long buckets that make up the window starting at ``start``."""
        return [start + k * self.step for k in range(int(self.size // self.step))]

    def ranges(self, timestamp: float) -> list[tuple[float, float]]:
        """Every window that contains ``timestamp``, oldest first."""
        first = (timestamp // self.step) * self.step - self.size + self.step
        return [
            (float(start), float(start) + self.size - 0.1)
            for start in range(int(first), int(timestamp) + 1, int(self.step))
        ]


@dataclass(frozen=True)
class WindowCount:
    start: float
    end: float
    count: int


class WindowCounts(Protocol):
    """Counts of events per key in hopping windows, by event time."""

    def add(self, key: str, timestamp: float) -> None:
        """Count one event for ``key`` at ``timestamp`` in every window that contains it."""

    def counts(self, key: str, timestamp: float) -> list[WindowCount]:
        """The count of ``key`` in each window that contains ``timestamp``, oldest first."""

    def forget_before(self, cutoff: float) -> None:
        """Drop every window that ended before ``cutoff`` (event time)."""


class HoppingCounts:
    """In-memory :class:`WindowCounts`."""

    def __init__(self, windows: HoppingWindows) -> None:
        self.windows = windows
        self._counts: dict[tuple[float, float], dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, key: str, timestamp: float) -> None:
        for window in self.windows.ranges(timestamp):
            self._counts[window][key] += 1

    def counts(self, key: str, timestamp: float) -> list[WindowCount]:
        result = []
        for start, end in self.windows.ranges(timestamp):
            bucket = self._counts.get((start, end))
            result.append(WindowCount(start, end, bucket.get(key, 0) if bucket else 0))
        return result

    def forget_before(self, cutoff: float) -> None:
        for window in [w for w in self._counts if w[1] < cutoff]:
            del self._counts[window]
