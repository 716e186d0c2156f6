"""The app's producer flush: every record sent so far is handed on before a commit or a batch's alerts go out."""

import asyncio
from types import SimpleNamespace

from faust.transport.producer import ProducerBuffer

from wirewatch.upstream.producer_flush import drain_buffer

SEND_SECONDS = 0.15  # longer than the 0.1 s Faust's buffer flush waits for a send


class _SlowProducer:
    """Faust's real send buffer in front of a transport that takes SEND_SECONDS per record."""

    def __init__(self, records: int) -> None:
        self.buffer = ProducerBuffer()
        self.buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
        self.sent: list[int] = []
        for number in range(records):
            self.buffer.put(SimpleNamespace(number=number, message=SimpleNamespace(channel=self)))

    async def publish_message(self, record, wait: bool = False) -> None:
        await asyncio.sleep(SEND_SECONDS)
        self.sent.append(record.number)


async def _flush_with(flush, records: int) -> tuple[_SlowProducer, int]:
    """The producer after ``flush`` and how many records were still in its buffer when it returned."""
    producer = _SlowProducer(records)
    await producer.buffer.start()  # starts its sending task
    try:
        await flush(producer)
        left = producer.buffer.size
    finally:
        producer.buffer.pending = asyncio.Queue()  # nothing left for its stop to send
        await producer.buffer.stop()
    return producer, left


def test_fausts_buffer_flush_gives_up_on_a_slow_send():
    _, left = asyncio.run(_flush_with(lambda producer: producer.buffer.flush(), records=3))
    assert left > 0, "why DrainingProducer exists: Faust's flush returned with records still in its buffer"


def test_draining_returns_once_every_buffered_record_is_handed_on():
    producer, left = asyncio.run(_flush_with(lambda producer: drain_buffer(producer.buffer), records=3))
    assert left == 0
    assert producer.sent == [0, 1, 2]


def test_the_apps_own_producer_drains_its_buffer_on_every_flush_the_commits_included():
    from wirewatch.settings import Settings
    from wirewatch.topology.app import create_app
    from wirewatch.upstream.producer_flush import DrainingProducer

    producer = create_app(Settings(app_id="producer-test")).app.producer
    assert isinstance(producer, DrainingProducer), "Faust's commit flushes app.producer before committing"
    slow = _SlowProducer(records=3)
    producer.buffer = slow.buffer  # Faust's real buffer, in front of a slow transport

    async def flush() -> int:
        await slow.buffer.start()
        try:
            await producer.flush()
            return slow.buffer.size
        finally:
            slow.buffer.pending = asyncio.Queue()
            await slow.buffer.stop()

    assert asyncio.run(flush()) == 0
    assert slow.sent == [0, 1, 2]
