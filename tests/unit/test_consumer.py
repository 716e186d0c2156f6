"""The consumer's guards against committing past unprocessed records: offset order and skipped acks."""

import asyncio

import pytest
from aiokafka.cluster import ClusterMetadata
from aiokafka.protocol.metadata import MetadataResponse_v0
from faust.types import TP
from faust.types.tuples import Message

from wirewatch.core.ordering import Admission, OffsetOrder
from wirewatch.settings import Settings
from wirewatch.topology.app import create_app

PARTITION = ("wire.raw", 0)
RAW = "consumer-test.wire.raw"


def test_records_in_order_are_handed_on_and_move_the_expectation():
    order = OffsetOrder()
    order.reset({PARTITION: 5})
    assert [order.admit(PARTITION, offset) for offset in (5, 6, 7)] == [Admission.HAND_ON] * 3
    assert order.next_offset(PARTITION) == 8


def test_a_record_ahead_is_held_back_until_the_expected_one_arrives():
    order = OffsetOrder()
    order.reset({PARTITION: 24})
    assert order.admit(PARTITION, 25) is Admission.HOLD_BACK
    assert order.next_offset(PARTITION) == 24, "holding back does not move the expectation"
    order.rewound(PARTITION)
    assert order.admit(PARTITION, 24) is Admission.HAND_ON
    assert order.admit(PARTITION, 25) is Admission.HAND_ON


def test_a_gap_still_there_after_fetching_again_is_real():
    order = OffsetOrder()
    order.reset({PARTITION: 10})
    assert order.admit(PARTITION, 12) is Admission.HOLD_BACK
    order.rewound(PARTITION)
    assert order.admit(PARTITION, 12) is Admission.HAND_ON_PAST_GAP
    assert order.admit(PARTITION, 14) is Admission.HOLD_BACK, "a later gap is checked again"


def test_a_record_behind_leaves_the_expectation_alone():
    order = OffsetOrder()
    order.reset({PARTITION: 10})
    assert order.admit(PARTITION, 3) is Admission.BEHIND
    assert order.next_offset(PARTITION) == 10


def test_an_unknown_partition_takes_whatever_comes_first_then_expects_order():
    order = OffsetOrder()
    assert order.admit(PARTITION, 40) is Admission.HAND_ON
    assert order.admit(PARTITION, 42) is Admission.HOLD_BACK


def test_seeking_sets_the_expectation_and_forgetting_drops_it():
    order = OffsetOrder()
    order.reset({PARTITION: 10, ("wire.raw", 1): 3})
    order.admit(PARTITION, 12)
    order.rewound(PARTITION)
    order.seek(PARTITION, 7)
    assert order.admit(PARTITION, 9) is Admission.HOLD_BACK, "a seek ends what the rewind allowed"
    order.forget([("wire.raw", 1)])
    assert order.next_offset(("wire.raw", 1)) is None
    order.reset({("wire.raw", 1): 0})
    assert order.next_offset(PARTITION) is None, "a reset expects exactly the partitions it names"


@pytest.fixture
def consumer():
    app = create_app(Settings(app_id="wirewatch-consumer-test", topic_raw=RAW)).app
    # What Faust's conductor does for every topic an agent consumes, once it subscribes.
    app.topics.acking_topics.add(RAW)
    app.consumer_generation_id = 4
    app.flow_control.resume()
    consumer = app.consumer
    # As if the group had assigned it the partition, without a broker.
    consumer.assignment = lambda: {TP(RAW, 0)}
    return consumer


def _message(topic: str, offset: int, generation_id: int, partition: int = 0) -> Message:
    return Message(
        topic, partition, offset, 0.0, None, None, b"", b"", 0, 0, tp=TP(topic, partition), generation_id=generation_id
    )


def _recorded(consumer, topic: str) -> list[int]:
    return list(consumer._acked.get(TP(topic, 0), []))


def test_an_ack_of_a_record_processed_in_this_assignment_is_recorded(consumer):
    consumer.ack(_message(RAW, 7, generation_id=4))
    assert _recorded(consumer, RAW) == [7]


def test_an_ack_of_a_record_fetched_before_the_last_rebalance_is_not_recorded(consumer):
    message = _message(RAW, 7, generation_id=3)
    consumer._unacked_messages.add(message)
    assert consumer.ack(message) is False
    assert _recorded(consumer, RAW) == []
    assert message not in consumer._unacked_messages, "a rebalance waiting for outstanding records is not held up"


def test_an_ack_during_a_rebalance_is_not_recorded(consumer):
    consumer.app.flow_control.suspend()
    consumer.ack(_message(RAW, 7, generation_id=4))
    assert _recorded(consumer, RAW) == []


def test_a_commit_waits_for_the_record_at_the_committed_offset(consumer):
    consumer._committed_offset[TP(RAW, 0)] = 45
    for offset in (46, 47):
        consumer.ack(_message(RAW, offset, generation_id=4))
    assert consumer._new_offset(TP(RAW, 0)) is None, "Faust's own check would commit 48, skipping 45"
    assert consumer.stranded([RAW]) == {(RAW, 0): (45, 46, "not done while a later one is")}
    consumer.ack(_message(RAW, 45, generation_id=4))
    assert consumer.stranded([RAW]) == {}
    assert consumer._new_offset(TP(RAW, 0)) == 48


def test_a_real_gap_at_the_committed_offset_does_not_hold_the_commit_up(consumer):
    consumer._committed_offset[TP(RAW, 0)] = 45
    consumer.mark_gap(TP(RAW, 0), 45, 47)
    consumer.ack(_message(RAW, 47, generation_id=4))
    assert consumer._new_offset(TP(RAW, 0)) == 48


def test_records_fetched_and_never_handed_on_are_stranded(consumer):
    consumer._order.reset({TP(RAW, 0): 32})
    consumer.fetch_state = lambda tp: {"position": 61, "paused": False, "fetched_not_taken": False}
    assert consumer.stranded([RAW]) == {(RAW, 0): (32, 61, "fetched but never handed on")}
    consumer.fetch_state = lambda tp: {"position": 61, "paused": False, "fetched_not_taken": True}
    assert consumer.stranded([RAW]) == {}, "fetched records still waiting to be taken are not stranded"
    consumer.fetch_state = lambda tp: {"position": 32, "paused": False, "fetched_not_taken": False}
    assert consumer.stranded([RAW]) == {}


def test_an_offset_acked_again_below_the_committed_one_does_not_hide_a_hole(consumer):
    consumer._committed_offset[TP(RAW, 0)] = 5
    consumer.ack(_message(RAW, 58, generation_id=4))  # read again while a commit up to 59 was under way
    consumer._committed_offset[TP(RAW, 0)] = 59
    for offset in (60, 61):
        consumer.ack(_message(RAW, offset, generation_id=4))
    assert consumer.stranded([RAW]) == {(RAW, 0): (59, 60, "not done while a later one is")}
    assert consumer._new_offset(TP(RAW, 0)) is None
    consumer.ack(_message(RAW, 59, generation_id=4))
    assert consumer._new_offset(TP(RAW, 0)) == 62


def test_a_partition_never_committed_is_read_again_from_its_log_start_and_not_committed_past_it(consumer):
    committed, never_committed, committed_at_zero = TP(RAW, 0), TP(RAW, 1), TP(RAW, 2)
    consumer.assignment = lambda: {committed, never_committed, committed_at_zero}
    sought = {}

    async def seek_to_committed():  # aiokafka's: it seeks only partitions committed past 0
        return {committed: 45, never_committed: None, committed_at_zero: 0}

    async def earliest_offsets(*partitions):
        return {tp: 3 for tp in partitions}

    async def seek_fetcher(tp, offset):
        sought[tp] = offset

    consumer.seek_to_committed, consumer.earliest_offsets, consumer._seek = seek_to_committed, earliest_offsets, seek_fetcher
    asyncio.run(consumer.perform_seek())
    assert sought == {never_committed: 3, committed_at_zero: 3}, "records skipped before the seek are read again"
    assert consumer.next_offset(never_committed) == 3

    consumer.ack(_message(RAW, 4, generation_id=4, partition=1))
    assert consumer._new_offset(never_committed) is None, "Faust's own check would commit 5, skipping 3"
    assert consumer.stranded([RAW]) == {(RAW, 1): (3, 4, "not done while a later one is")}
    consumer.ack(_message(RAW, 3, generation_id=4, partition=1))
    assert consumer._new_offset(never_committed) == 5


def test_faust_infers_no_gap_on_a_source_partition(consumer):
    consumer._committed_offset[TP(RAW, 0)] = 803
    asyncio.run(consumer._add_gap(TP(RAW, 0), 804, 878))
    assert not consumer._gap.get(TP(RAW, 0)), "records 804 to 878 would count as done unprocessed"


class _AiokafkaConsumerSeenFromFaust:
    """What ``ask_for_missing_topics`` reads of aiokafka's consumer: its subscription and its cluster metadata."""

    def __init__(self, subscribed: set[str], known: set[str]) -> None:
        self._subscribed = subscribed
        self._client = self
        self.cluster = ClusterMetadata()
        self.cluster.update_metadata(MetadataResponse_v0(
            [(1, "127.0.0.1", 9092)], [(0, topic, [(0, 0, 1, [1], [1])]) for topic in sorted(known)]))
        self.metadata_requests = 0

    def subscription(self) -> set[str]:
        return self._subscribed

    async def force_metadata_update(self) -> bool:
        self.metadata_requests += 1
        return True


async def _on_this_loop(function, *args):
    """Faust's consumer thread is not running here: its calls run on the test's loop."""
    return await function(*args)


def test_a_subscribed_topic_missing_from_the_metadata_makes_the_worker_ask_again(consumer):
    candidates = "consumer-test.candidates"
    consumer._thread._consumer = _AiokafkaConsumerSeenFromFaust({RAW, candidates}, known={RAW})
    consumer._thread.call_thread = _on_this_loop
    assert asyncio.run(consumer.ask_for_missing_topics()) == [candidates]
    assert consumer._thread._consumer.metadata_requests == 1


def test_no_metadata_request_while_every_subscribed_topic_is_known(consumer):
    consumer._thread._consumer = _AiokafkaConsumerSeenFromFaust({RAW}, known={RAW, "elsewhere"})
    assert asyncio.run(consumer.ask_for_missing_topics()) == []
    assert consumer._thread._consumer.metadata_requests == 0
