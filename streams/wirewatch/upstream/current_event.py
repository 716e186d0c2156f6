"""Making an event current for Faust's tables without touching the stream's own current event.

- Stands in for ``Stream._set_current_event`` (``faust/streams.py``, line 1203
  in faust-streaming 0.15.3), which sets both the context variable that tables
  read to pick a changelog partition and the stream's ``current_event``, which
  ``Stream.take`` reads (line 353 on) to learn which event it is buffering.
- Symptom here: the story agent processes a batch of ``take_events`` one event
  at a time; setting each as current through the stream made ``take`` ack the
  batch's last event twice and never the one it buffered: a hole of one
  record (see :mod:`.consumer`).
- Lets go when Faust offers a public way to choose the changelog partition of
  a table write; ``tests/unit/test_upstream.py`` shows the stream's event moving.
"""

from __future__ import annotations

import weakref

from faust.streams import _current_event
from faust.types import EventT

__all__ = ["make_current"]


def make_current(event: EventT) -> None:
    """Make ``event`` the one whose changelog partitions Faust's tables write to, in this task.

    Not with ``Stream._set_current_event``: that also sets the stream's own
    current event, which ``Stream.take`` reads, once a batch is consumed, to
    learn which event it is buffering. It then acked the batch's last event a
    second time instead, and the record it buffered was never acked: a hole of
    one record that Faust's own check committed past and :class:`GuardedConsumer`
    does not.
    """
    _current_event.set(weakref.ref(event))
