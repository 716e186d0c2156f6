"""Processed marks: which briefs the story engine has applied, stored one record per batch of briefs.

A mark (brief id → its story and the alerts it touched) is what lets a
brief read again after a crash change nothing. Stored one table row per
brief, marks were half of the story stage's changelog records: a write for
every brief and a tombstone when it was forgotten. :class:`ProcessedMarks`
holds a batch's marks and writes them as one row, keyed by the batch's first
brief id, plus one row, :data:`NEWEST`, naming the newest batch. A brief is
found through an index brief id → row, kept in memory and derived from the
rows (never stored), like the clusterer's term index. The index is rebuilt
whenever :data:`NEWEST` names a batch it did not write: the rows were
restored after a restart or changed by another worker after a rebalance.

A row goes once its newest brief is older than the horizon the engine keeps
marks for; a brief read again after that is recognised by its story and
topic counts instead (see :meth:`wirewatch.core.engine.StoryEngine.apply`).
Pure Python: the store is any mutable mapping (a Faust table in the worker).
"""

from __future__ import annotations

from collections.abc import MutableMapping

__all__ = ["NEWEST", "ProcessedMarks"]

#: The row that names the newest batch written, by whichever worker.
NEWEST = "newest-batch"

_NOT_INDEXED = object()


class ProcessedMarks:
    """Brief id → its mark, held until :meth:`apply` and stored one row per batch."""

    def __init__(self, store: MutableMapping[str, dict]) -> None:
        self.store = store
        self._held: dict[str, dict] = {}
        self._index: dict[str, str] = {}
        self._indexed_newest: object = _NOT_INDEXED

    def get(self, brief_id: str) -> dict | None:
        """The brief's mark, held or stored; None when it has none."""
        held = self._held.get(brief_id)
        if held is not None:
            return held
        newest = self.store.get(NEWEST)
        if newest != self._indexed_newest:
            self._reindex(newest)
        row = self._index.get(brief_id)
        if row is None:
            return None
        batch = self.store.get(row)
        return _marks_of(row, batch).get(brief_id) if batch else None

    def hold(self, brief_id: str, mark: dict) -> None:
        """Mark the brief in the batch being built; nothing is stored before :meth:`apply`."""
        self._held[brief_id] = mark

    def apply(self) -> int:
        """Store the held marks as one row, and that row as the newest; return how many marks it held."""
        if not self._held:
            return 0
        newest = self.store.get(NEWEST)
        if newest != self._indexed_newest:
            self._reindex(newest)
        marks, self._held = self._held, {}
        row = f"batch-{next(iter(marks))}"
        self.store[row] = {"t": max(mark["t"] for mark in marks.values()), "marks": marks}
        # The count tells this write from any other, even one that reuses the row (a batch read again).
        newest = {"row": row, "n": (newest or {}).get("n", 0) + 1}
        self.store[NEWEST] = newest
        for brief_id in marks:
            self._index[brief_id] = row
        self._indexed_newest = newest
        return len(marks)

    def forget_before(self, horizon: float) -> int:
        """Delete the rows whose every mark is older than ``horizon``; return how many rows went."""
        gone = [row for row, batch in list(self.store.items()) if row != NEWEST and batch["t"] < horizon]
        for row in gone:
            for brief_id in _marks_of(row, self.store[row]):
                if self._index.get(brief_id) == row:
                    del self._index[brief_id]
            del self.store[row]
        return len(gone)

    def __len__(self) -> int:
        """Marks stored (held ones not counted)."""
        return sum(len(_marks_of(row, batch)) for row, batch in self.store.items() if row != NEWEST)

    def _reindex(self, newest: object) -> None:
        self._index = {brief_id: row for row, batch in list(self.store.items()) if row != NEWEST
                       for brief_id in _marks_of(row, batch)}
        self._indexed_newest = newest


def _marks_of(row: str, batch: dict) -> dict[str, dict]:
    # Rows written before marks were batched are one brief's mark, keyed by its id.
    return batch.get("marks", {row: batch})
