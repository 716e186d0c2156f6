"""Which record of each source partition a consumer may hand on next.

Kafka delivers a partition's records in offset order, but a consumer that
seeks while it still holds records fetched before the seek can see them out
of order. :class:`OffsetOrder` is the bookkeeping that lets the consumer
notice: it knows the offset each partition must hand on next and says, for
every record, whether to hand it on or to hold it back and fetch again from
that offset. It does no I/O; :class:`wirewatch.topology.app` wires it into Faust's
consumer.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, Mapping

__all__ = ["Admission", "OffsetOrder"]


class Admission(enum.Enum):
    """What to do with a record."""

    #: The record the partition expects next, or a partition with no expectation yet.
    HAND_ON = "hand_on"
    #: Further on than expected for the first time: hold it back and fetch again from the expected offset.
    HOLD_BACK = "hold_back"
    #: Still further on after fetching again from the expected offset: the records between are not in
    #: the log (expired, or transaction markers), so it is handed on.
    HAND_ON_PAST_GAP = "hand_on_past_gap"
    #: Older than expected: a record read before, handed on for the consumer to drop.
    BEHIND = "behind"


class OffsetOrder:
    """The next offset of every source partition, and where the fetcher was last sent back to."""

    def __init__(self) -> None:
        self._next: dict[Hashable, int] = {}
        self._rewound_to: dict[Hashable, int] = {}

    def reset(self, next_offsets: Mapping[Hashable, int]) -> None:
        """Expect exactly these partitions at these offsets (after seeking to the committed offsets)."""
        # In place: a fetch under way holds these very dicts.
        self._next.clear()
        self._next.update(next_offsets)
        self._rewound_to.clear()

    def seek(self, partition: Hashable, offset: int) -> None:
        """The fetcher was sent to ``offset`` of ``partition``."""
        self._next[partition] = offset
        self._rewound_to.pop(partition, None)

    def rewound(self, partition: Hashable) -> None:
        """The fetcher was sent back to the expected offset after a record arrived ahead of it."""
        self._rewound_to[partition] = self._next[partition]

    def forget(self, partitions: Iterable[Hashable]) -> None:
        """The partitions are no longer assigned."""
        for partition in partitions:
            self._next.pop(partition, None)
            self._rewound_to.pop(partition, None)

    def next_offset(self, partition: Hashable) -> int | None:
        """The offset to hand on next from ``partition``, if known."""
        return self._next.get(partition)

    def admit(self, partition: Hashable, offset: int) -> Admission:
        """Decide on the record at ``offset``; a record handed on moves the expectation past it."""
        expected = self._next.get(partition)
        if expected is not None and offset < expected:
            return Admission.BEHIND
        if expected is None or offset == expected:
            admission = Admission.HAND_ON
        elif self._rewound_to.get(partition) == expected:
            admission = Admission.HAND_ON_PAST_GAP
        else:
            return Admission.HOLD_BACK
        self._next[partition] = offset + 1
        self._rewound_to.pop(partition, None)
        return admission
