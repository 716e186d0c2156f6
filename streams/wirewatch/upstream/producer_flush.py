"""A producer flush that waits for every buffered record, changelog writes included.

- Replaces ``ProducerBuffer.flush`` (``faust/transport/producer.py``,
  ``flush_atmost``, line 78 in faust-streaming 0.15.3) where the story stage
  needs it: that flush stops waiting once 0.1 s pass without a send
  (``asyncio.wait_for(self.message_sent.wait(), timeout=0.1)``), as they can on
  a busy worker, and does not wait for the record its sender has taken from
  the buffer and not yet handed on.
- Symptom here: stories and alerts went out, and processed marks were written,
  before the table writes they depend on were on the broker; a crash then left
  a mark vouching for state that was lost.
- Lets go when Faust's flush drains its buffer whatever the pace of sends;
  ``tests/test_producer.py`` shows the plain flush returning early.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

__all__ = ["flush_producer"]


class BufferMarker:
    """Put in Faust's send buffer behind what it holds; reached once everything before it was handed on."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.message = SimpleNamespace(channel=self)  # the buffer hands a record on to its message's channel

    async def publish_message(self, fut, wait: bool = False) -> None:
        self.reached.set()


async def flush_producer(producer) -> None:
    """Wait until every record sent so far, table changelog records included, is on the broker.

    Faust's own flush stops waiting for its send buffer once 0.1 s pass
    without a send, as they can on a busy worker, and does not wait for the
    record its sender has taken from the buffer and not yet handed on.
    """
    marker = BufferMarker()
    producer.buffer.put(marker)
    await marker.reached.wait()
    await producer.flush()
