"""Faust's aiokafka consumer, kept from committing past records no agent has processed.

- Overrides ``faust.transport.drivers.aiokafka.Consumer`` (its ``_new_offset``,
  ``_add_gap``, ``ack``, ``perform_seek``, ``seek``, ``on_partitions_revoked``
  and ``getmany``), written against faust-streaming 0.15.3 with aiokafka 0.14.0.
- Upstream: ``faust/transport/consumer.py``, ``Consumer._new_offset`` (line
  1097 in 0.15.3) counts the committed offset as the last record done rather
  than the next one to do (``min(acked) - committed_offset > 1``), so a hole
  of exactly one record is committed past; ``Consumer._add_gap`` (line 1157)
  infers gaps from records that arrive further on than its read offset; and
  ``Consumer.ack`` (line 825) records acks of records a stream skipped during
  a rebalance.
- Symptom here: the crash and takeover tests lost briefs (a record committed
  unprocessed) or stalled for good (a hole never committed); see the class
  docstring for each way.
- Lets go when upstream commits only runs of done records that start at the
  committed offset, infers no gaps on partitions read in order, and records
  no ack for a record not processed in the current assignment.
  ``tests/unit/test_upstream.py`` shows the one-record hole with the plain class.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.structs import TopicPartition
from faust.transport.drivers.aiokafka import Consumer as AiokafkaDriverConsumer
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from ..core.ordering import Admission, OffsetOrder

__all__ = ["GuardedConsumer"]

log = logging.getLogger(__name__)


class GuardedConsumer(AiokafkaDriverConsumer):
    """Faust's aiokafka consumer, with guards that keep the group from committing past unprocessed records.

    Faust records a source record as done when a stream acks it, and commits
    the run of done offsets that follows the committed one. Its check counts
    the committed offset as the last record done, not the next one to do, so
    a hole of one record was committed past (lost) and a longer one never (a
    commit stalled for good). The takeover and crash tests saw both:

    * Records out of order. Faust seeks its partitions to their committed
      offsets after a rebalance and after a table recovery while it still holds
      a batch fetched before the seek, further on; it takes the records in
      between for a gap, and when they arrive they are older than its read
      offset and dropped. So this consumer hands on a source partition's
      records only in offset order (:class:`~wirewatch.core.ordering.OffsetOrder`):
      a record further on is held back with the rest of its batch and the
      fetcher is sent back to the expected offset. Should the record that comes
      first from there still be further on, the gap is real (expired records,
      an upstream producer's transaction markers): it is marked done and the
      record handed on. Faust infers no gaps of its own on source partitions.
    * Records skipped yet acked. During a rebalance, and for records fetched
      before it, a stream skips a record without processing it and acks it all
      the same. Such acks are not recorded here: the record is read again.

    * A partition never committed. Faust's seek to the committed offsets
      (aiokafka's ``seek_to_committed``) leaves a partition without a committed
      offset, or committed at 0, where its fetcher stands, so records skipped
      before the seek were never read again, and Faust, knowing no committed
      offset, committed past them. This consumer seeks such a partition to its
      log start, and counts from there as from a committed offset.

    Besides, a commit never skips the record at the committed offset while it is
    not done, and :meth:`stranded` finds where records wait that nothing will
    process, for the worker to read them again.

    Changelog topics are compacted and keep Faust's handling.
    """


    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._order = OffsetOrder()
        #: Per source partition with nothing committed, the log start reading began at (Faust knows no offset).
        self._start_offsets: dict[TopicPartition, int] = {}

    async def perform_seek(self) -> None:
        await super().perform_seek()
        # No await until the order matches Faust's read offsets again: records keep flowing meanwhile.
        acks_enabled_for = self.app.topics.acks_enabled_for
        sources = [tp for tp in self.assignment() if acks_enabled_for(tp.topic)]
        committed = {tp: self._read_offset.get(tp) for tp in sources}
        started = {tp: offset for tp, offset in committed.items() if offset}
        self._order.reset(started)
        self._start_offsets.clear()
        not_sought = [tp for tp in sources if tp not in started]
        if not_sought:
            # consumer_auto_offset_reset is "earliest": with nothing committed, reading starts at the log start.
            for tp, log_start in (await self.earliest_offsets(*not_sought)).items():
                self._start_offsets[tp] = log_start
                await self.seek(tp, log_start)

    async def _add_gap(self, tp: TopicPartition, offset_from: int, offset_to: int) -> None:
        # Faust infers a gap from a record further on than its read offset; on a source partition, whose records
        # come in order, that is only ever a read offset out of step, and the records "in the gap" would count as
        # done unprocessed. Real gaps are marked by getmany (mark_gap).
        if not self.app.topics.acks_enabled_for(tp.topic):
            await super()._add_gap(tp, offset_from, offset_to)

    async def seek(self, partition: TopicPartition, offset: int) -> None:
        await super().seek(partition, offset)
        self._order.seek(partition, offset)

    async def on_partitions_revoked(self, revoked) -> None:
        self._order.forget(revoked)
        for tp in revoked:
            self._start_offsets.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    def mark_gap(self, tp: TopicPartition, start: int, end: int) -> None:
        """Count offsets ``start`` to ``end - 1`` of ``tp`` as done: the log has no records there.

        Faust's own gaps start one after the committed offset at the earliest,
        which would leave a gap at the committed offset holding the commit up.
        """
        gaps = self._gap[tp]
        gaps.addi(start, end)
        gaps.merge_overlaps()

    def _lowest_done(self, tp: TopicPartition) -> int | None:
        """The lowest offset of ``tp`` acked or in a gap and not yet committed."""
        acked = self._acked.get(tp)
        gaps = self._gap.get(tp)
        lowest = [min(acked)] if acked else []
        if gaps:
            lowest.append(gaps.begin())
        return min(lowest, default=None)

    def _committed(self, tp: TopicPartition) -> int | None:
        """The committed offset of ``tp``; with nothing committed yet, the log start reading began at.

        Faust knows no committed offset for a partition never committed, nor
        for one committed at 0.
        """
        committed = self._committed_offset.get(tp)
        return committed if committed is not None else self._start_offsets.get(tp)

    def _forget_committed_acks(self, tp: TopicPartition) -> None:
        """Drop acked offsets of ``tp`` below its committed offset.

        A record read again gets acked again; acked while a commit past it was
        under way, it lands below the new committed offset. Faust then commits
        nothing for that round, and the stale offset hid a hole behind it from
        :meth:`stranded` (a restarted worker's story stage waited for its stall
        watch this way).
        """
        committed = self._committed(tp)
        acked = self._acked.get(tp)
        if committed is None or not acked or min(acked) >= committed:
            return
        stale = [offset for offset in acked if offset < committed]
        acked[:] = [offset for offset in acked if offset >= committed]
        self._acked_index[tp].difference_update(stale)

    def _commit_hole(self, tp: TopicPartition) -> tuple[int, int] | None:
        """The committed offset of ``tp`` and its lowest done offset, when the record at the first is not done
        while a later one is."""
        self._forget_committed_acks(tp)
        committed = self._committed(tp)
        lowest_done = self._lowest_done(tp)
        if committed is not None and lowest_done is not None and lowest_done > committed:
            return committed, lowest_done
        return None

    def _new_offset(self, tp: TopicPartition) -> int | None:
        # Faust's own check lets a commit skip the record at the committed offset when the next one is done.
        if self._commit_hole(tp) is not None:
            return None
        return super()._new_offset(tp)

    def assigned(self, topics: Iterable[str]) -> list[TopicPartition]:
        """The partitions of ``topics`` assigned to this consumer."""
        topics = set(topics)
        return [tp for tp in self.assignment() if tp.topic in topics]

    def fetch_state(self, tp: TopicPartition) -> dict:
        """The fetcher's position, pause and highwater for ``tp``, and whether fetched records of it wait to be
        taken; empty where the fetcher does not say (aiokafka keeps these to itself)."""
        try:
            fetcher_consumer = self._thread._consumer
            state = {"fetched_not_taken": tp in fetcher_consumer._fetcher._records}
            subscription = fetcher_consumer._subscription.subscription
            if subscription is not None and tp in subscription.assignment.tps:
                partition = subscription.assignment.state_value(tp)
                state |= {"position": partition._position, "paused": partition.paused, "highwater": partition.highwater}
            return state
        except AttributeError:
            return {}

    def stranded(self, topics: Iterable[str]) -> dict[tuple[str, int], tuple[int, int, str]]:
        """Partitions of ``topics`` with records that nothing will process unless they are read again.

        Maps each to the offset to read again from, an offset beyond the
        stranded records, and how they were stranded. Two ways it was seen:

        * a commit hole: the record at the committed offset is not done while
          a later one is. An agent here acks its records in offset order, so
          this lasts only if the record went missing inside Faust or its ack
          was not recorded (see :meth:`ack`);
        * a fetch past: the fetcher stands past the next offset to hand on,
          unpaused, with nothing fetched waiting to be taken: Faust let go of
          records it had fetched.

        Either may show for a moment in normal work; only one that lasts means
        records are stranded.
        """
        stranded = {}
        for tp in self.assigned(topics):
            hole = self._commit_hole(tp)
            if hole is not None:
                stranded[(tp.topic, tp.partition)] = (*hole, "not done while a later one is")
                continue
            next_offset = self._order.next_offset(tp)
            fetch = self.fetch_state(tp)
            position = fetch.get("position")
            if (
                next_offset is not None and position is not None and position > next_offset
                and not fetch.get("paused") and not fetch.get("fetched_not_taken")
            ):
                stranded[(tp.topic, tp.partition)] = (next_offset, position, "fetched but never handed on")
        return stranded

    async def ask_for_missing_topics(self) -> list[str]:
        """Subscribed topics the consumer's cluster metadata lacks; when there are some, ask the cluster again.

        A topic missing from the metadata at a group join gets no partitions
        (Faust's assignor ignores it), and aiokafka rejoins once the topic
        shows up in its metadata, which it refreshes every
        ``metadata_max_age_ms`` (5 minutes). A broker busy loading after a
        restart answered without topics created seconds before: the worker
        read nothing for those 5 minutes.
        """
        consumer = self._thread._consumer
        if consumer is None:
            return []
        cluster = consumer._client.cluster
        missing = sorted(topic for topic in consumer.subscription() if cluster.partitions_for_topic(topic) is None)
        if missing:
            await self._thread.call_thread(consumer._client.force_metadata_update)
        return missing

    def next_offset(self, tp: TopicPartition) -> int | None:
        """The offset of the record this consumer hands on next from a source partition, if known."""
        return self._order.next_offset(tp)

    def ack(self, message) -> bool:
        app = self.app
        if not app.topics.acks_enabled_for(message.topic) or (
            app.flow_control.is_active() and message.generation_id == app.consumer_generation_id
        ):
            return super().ack(message)
        # Skipped by its stream, or processed and acked too late to count: read it again (at least once).
        with ack_lock:
            if not message.acked:
                message.acked = True
                # No longer outstanding either: a rebalance waits for outstanding records before it goes on.
                self._unacked_messages.discard(message)
                notify(self._waiting_for_ack)
                self.app.wirewatch_metrics.unprocessed_acks.labels(message.topic).inc()
        return False

    async def getmany(self, timeout: float):
        order = self._order
        acks_enabled_for = self.app.topics.acks_enabled_for
        rewound_now = set()
        async for tp, message in super().getmany(timeout):
            if not acks_enabled_for(tp.topic):
                yield tp, message
                continue
            expected = order.next_offset(tp)
            admission = Admission.HOLD_BACK if tp in rewound_now else order.admit(tp, message.offset)
            if admission is Admission.HOLD_BACK:
                self.app.wirewatch_metrics.held_back_records.labels(tp.topic).inc()
                if tp not in rewound_now:
                    # The rest of this batch for tp was fetched before the seek: held back as well.
                    rewound_now.add(tp)
                    log.warning("%s[%s]: offset %s arrived before %s; fetching again from %s",
                                tp.topic, tp.partition, message.offset, expected, expected)
                    await self.seek(tp, expected)
                    order.rewound(tp)
                continue
            if admission is Admission.HAND_ON_PAST_GAP:
                log.info("%s[%s]: the log has no records from offset %s to %s",
                         tp.topic, tp.partition, expected, message.offset - 1)
                self.mark_gap(tp, expected, message.offset)
            yield tp, message
