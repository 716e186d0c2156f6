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
- The consumer's commit calls the same flush (``Consumer._commit_offsets``,
  ``faust/transport/consumer.py`` line 1073: ``await self.app.producer.flush()``
  before ``self._commit(...)``), so an offset could be committed while
  changelog writes of the records it covers still waited in the buffer; a
  worker killed then lost them. The takeover test saw exactly that: a killed
  worker's de-duplication entries missing, so the survivor forwarded briefs
  again. :class:`DrainingProducer` makes every flush of the app's producer,
  the commit's included, wait for the buffer to drain; no offset is committed
  before every changelog write it caused is acknowledged by the broker.
- Lets go when Faust's flush drains its buffer whatever the pace of sends;
  ``tests/unit/test_producer.py`` shows the plain flush returning early.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.transport.drivers.aiokafka import Producer as AiokafkaDriverProducer

__all__ = ["DrainingProducer", "drain_buffer"]


class BufferMarker:
    """Put in Faust's send buffer behind what it holds; reached once everything before it was handed on."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.message = SimpleNamespace(channel=self)  # the buffer hands a record on to its message's channel

    async def publish_message(self, fut, wait: bool = False) -> None:
        self.reached.set()


async def drain_buffer(buffer) -> None:
    """Wait until every record put in Faust's send ``buffer`` so far has been handed on to the transport."""
    if not buffer.started or buffer.should_stop:
        return  # nothing sends from a buffer that does not run: there is nothing to wait for
    marker = BufferMarker()
    buffer.put(marker)
    await marker.reached.wait()


class DrainingProducer(AiokafkaDriverProducer):
    """Faust's aiokafka producer whose flush waits until every record sent so far, table changelog records
    included, is on the broker: it drains the send buffer first."""

    async def flush(self) -> None:
        await drain_buffer(self.buffer)
        await super().flush()
