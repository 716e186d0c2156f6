"""Noticing a partition that has work waiting and makes no progress. Pure Python.

The worker feeds :class:`StallWatch` the end offsets and committed offsets of
its source partitions at every consumer-lag reading. A partition that stays
behind with its committed offset unmoved for ``after_seconds`` is stalled: the
worker logs its consumer's flow state and fetches the partition again from
its committed offset; stalled for twice as long, it answers ``/health`` with
503, so a supervisor (Kubernetes' liveness probe) restarts it, and a restart
resumes from the committed offsets without loss.
"""

from __future__ import annotations

__all__ = ["StallWatch"]

Partition = tuple[str, int]


class StallWatch:
    def __init__(self, after_seconds: float) -> None:
        self.after_seconds = after_seconds
        self._since: dict[Partition, tuple[int, float]] = {}  # committed offset, and since when it has not moved
        self.stalled: set[Partition] = set()

    def observe(self, now: float, ends: dict[Partition, int], committed: dict[Partition, int]) -> set[Partition]:
        """Record one reading; return the partitions that became stalled with it."""
        since = {}
        for partition, end in ends.items():
            done = committed.get(partition, 0)
            if done >= end:
                continue
            previous = self._since.get(partition)
            since[partition] = previous if previous is not None and previous[0] == done else (done, now)
        self._since = since
        stalled = {partition for partition, (_, start) in since.items() if now - start >= self.after_seconds}
        newly = stalled - self.stalled
        self.stalled = stalled
        return newly
