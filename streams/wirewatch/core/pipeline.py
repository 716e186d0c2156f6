"""raw record → briefs and dead letters: the whole raw stage, without Kafka.

The worker's agent and ``wirewatch parse`` both call :func:`split_record`, so
what the offline command prints is what the worker publishes.
"""

from __future__ import annotations

import base64
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import orjson
from pydantic import ValidationError

from ..errors import DecodeError, RejectedInput
from ..models import MAX_SOURCE_CHARS, Brief, DeadLetter, Envelope
from .parser import DEFAULT_PARSE_BUDGET, ParsedPage, parse_page

__all__ = ["RawRecord", "Outcome", "decode_envelope", "split_record", "parse_envelope", "dead_letter", "check_fetch_time",
           "minimal_dead_letter", "MAX_DEAD_LETTER_KEY_BYTES",
           "bare_page_source", "read_brief", "read_brief_batch", "in_event_order", "RecentIds", "FirstSightings"]


@dataclass(frozen=True)
class RawRecord:
    """A record of the raw topic, as much of it as the raw stage needs."""

    value: bytes | None
    topic: str = "wire.raw"
    partition: int = 0
    offset: int = 0
    timestamp: datetime | None = None
    key: bytes | None = None
    headers: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What one raw record yields."""

    briefs: list[Brief]
    dead_letters: list[DeadLetter]
    envelope: Envelope | None = None
    #: Briefs on the page that ``keep`` refused (see :func:`~wirewatch.core.parser.parse_page`).
    left_out: int = 0


def decode_envelope(record: RawRecord, *, max_page_bytes: int) -> Envelope:
    """The envelope a raw record carries: a JSON envelope, or a bare text page.

    A bare page takes ``fetched_at`` from the record timestamp and ``source``
    from a ``source`` header, else from the record key. Raises
    :class:`DecodeError` with a reason code otherwise.
    """
    value = record.value
    if value is None or not value.strip():
        raise DecodeError("empty_message", "the record has no value")
    if len(value) > max_page_bytes:
        raise DecodeError(
            "too_large", f"the value is {len(value)} bytes, over the {max_page_bytes}-byte page limit"
        )
    if value.lstrip()[:1] == b"{":
        return _decode_json_envelope(value)
    try:
        body = value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DecodeError("invalid_utf8", f"the value is not UTF-8: {error.reason} at byte {error.start}") from None
    source = bare_page_source(record)
    if not source:
        raise DecodeError("missing_source", "a bare page needs a 'source' header or a record key")
    if record.timestamp is None:
        raise DecodeError("missing_timestamp", "a bare page needs a record timestamp for fetched_at")
    try:
        return Envelope(source=source, fetched_at=record.timestamp, body=body)
    except ValidationError as error:  # a page fit for a worker's memory, yet not for the envelope
        raise DecodeError("invalid_envelope", f"the bare page makes no valid envelope: {_first_problem(error)}") from None


def _decode_json_envelope(value: bytes) -> Envelope:
    try:
        return Envelope.model_validate_json(value)
    except ValidationError as error:
        problems = error.errors(include_url=False)
        if any(problem["type"] == "json_invalid" for problem in problems):
            raise DecodeError("invalid_json", f"the value looks like JSON but is not: {problems[0]['msg']}") from None
        summary = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'envelope'}: {problem['msg']}"
            for problem in problems[:5]
        )
        raise DecodeError("invalid_envelope", f"the envelope is invalid: {summary}") from None


def bare_page_source(record: RawRecord) -> str | None:
    """The source of a bare page: its ``source`` header, else its record key.

    Keys are often page URLs, which may be longer than a source name may be:
    a longer one is cut to fit and ends in "…".
    """
    source = _header_text(record.headers, "source") or _key_text(record.key)
    if source is not None and len(source) > MAX_SOURCE_CHARS:
        source = source[: MAX_SOURCE_CHARS - 1].rstrip() + "…"
    return source


def _header_text(headers: Mapping[str, bytes], name: str) -> str | None:
    raw = headers.get(name)
    if raw is None:
        return None
    text = raw.decode("utf-8", errors="replace").strip()
    return text or None


def _key_text(key: bytes | None) -> str | None:
    if not key:
        return None
    text = key.decode("utf-8", errors="replace").strip()
    return text or None


def split_record(
    record: RawRecord,
    *,
    max_page_bytes: int,
    dead_letter_max_original_bytes: int,
    max_briefs_per_page: int = 500,
    now: datetime | None = None,
    keep: Callable[[str], bool] | None = None,
    parse_budget_seconds: float | None = DEFAULT_PARSE_BUDGET,
) -> Outcome:
    """Briefs and dead letters of one raw record (only the briefs whose ids ``keep`` takes, when given).

    Never raises on bad input. A page that takes more than
    ``parse_budget_seconds`` of CPU is dead-lettered as ``parse_budget_exceeded``.
    """
    try:
        envelope = decode_envelope(record, max_page_bytes=max_page_bytes)
        check_fetch_time(envelope, now or datetime.now(timezone.utc))
        page = parse_envelope(envelope, max_briefs=max_briefs_per_page, keep=keep, budget_seconds=parse_budget_seconds)
    except RejectedInput as error:
        letter = dead_letter(record, error.reason, error.message, max_original_bytes=dead_letter_max_original_bytes)
        return Outcome(briefs=[], dead_letters=[letter])
    counts: Counter[str] = Counter()
    for rejected in page.rejected:
        counts[rejected.reason] += rejected.count
    letters = [
        dead_letter(
            record,
            reason,
            f"{count} item(s) on the page were rejected: "
            + next(r.message for r in page.rejected if r.reason == reason),
            max_original_bytes=dead_letter_max_original_bytes,
            rejected_count=count,
        )
        for reason, count in counts.items()
    ]
    return Outcome(briefs=page.briefs, dead_letters=letters, envelope=envelope, left_out=page.left_out)


#: Producers' clocks may run a little ahead; more than this is a bad fetch time.
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: Kafka timestamps cannot precede 1970; wire archives do not precede this.
EARLIEST_FETCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def check_fetch_time(envelope: Envelope, now: datetime) -> None:
    """Reject fetch times Kafka or the windows cannot use: in the future, or before 2000."""
    for name, moment in (("fetched_at", envelope.fetched_at), ("published_at", envelope.published_at)):
        if moment is None:
            continue
        if moment > now + MAX_CLOCK_SKEW:
            raise DecodeError("time_in_future", f"{name} {moment.isoformat()} is in the future")
        if moment < EARLIEST_FETCH:
            raise DecodeError("time_out_of_range", f"{name} {moment.isoformat()} is before {EARLIEST_FETCH.year}")


def parse_envelope(
    envelope: Envelope,
    *,
    max_briefs: int = 500,
    keep: Callable[[str], bool] | None = None,
    budget_seconds: float | None = DEFAULT_PARSE_BUDGET,
) -> ParsedPage:
    """Parse the page an envelope carries, within ``budget_seconds`` of CPU."""
    return parse_page(
        envelope.body,
        fetched_at=envelope.fetched_at,
        source=envelope.source,
        url=envelope.url,
        section=envelope.section,
        lead_published_at=envelope.published_at,
        max_briefs=max_briefs,
        keep=keep,
        budget_seconds=budget_seconds,
    )


#: A dead letter keeps this much of a record key: keys are page URLs, and a dead
#: letter must stay far below the broker's message size whatever the key.
MAX_DEAD_LETTER_KEY_BYTES = 1024
_MAX_MESSAGE_CHARS = 2000


def dead_letter(
    record: RawRecord,
    reason: str,
    message: str,
    *,
    max_original_bytes: int,
    rejected_count: int = 1,
) -> DeadLetter:
    """A dead letter for ``record``, keeping at most ``max_original_bytes`` of its value and a short key."""
    value = record.value or b""
    kept = value[:max_original_bytes]
    key = record.key
    return DeadLetter(
        reason=reason,
        message=message if len(message) <= _MAX_MESSAGE_CHARS else message[: _MAX_MESSAGE_CHARS - 1] + "…",
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        source_timestamp=record.timestamp,
        source_key_base64=base64.b64encode(key[:MAX_DEAD_LETTER_KEY_BYTES]).decode("ascii") if key is not None else None,
        source_key_size=len(key) if key is not None else None,
        source_key_truncated=key is not None and len(key) > MAX_DEAD_LETTER_KEY_BYTES,
        original_base64=base64.b64encode(kept).decode("ascii"),
        original_size=len(value),
        original_truncated=len(kept) < len(value),
        rejected_count=rejected_count,
        failed_at=datetime.now(timezone.utc),
    )


def minimal_dead_letter(letter: DeadLetter, why: str) -> DeadLetter:
    """``letter`` without the record's key and value: where it came from, why, and why the rest is missing."""
    return letter.model_copy(
        update={
            "message": f"{letter.message[:500]} (key and value left out: {why[:300]})",
            "source_key_base64": None,
            "source_key_truncated": letter.source_key_base64 is not None,
            "original_base64": "",
            "original_truncated": letter.original_size > 0,
        }
    )


def read_brief(record: RawRecord, *, max_original_bytes: int) -> Brief | DeadLetter:
    """The brief an internal topic's record carries, or a dead letter saying why it carries none.

    A reader that knows fewer fields than the writer ignores the others: during
    a rolling upgrade, a worker of the older version reads briefs that a newer
    one wrote with a field it adds, and passes the record on unchanged. Only a
    record whose known fields break the schema (or that is not a JSON object)
    is dead-lettered, as ``invalid_brief``.
    """
    try:
        return Brief.model_validate_json(record.value or b"")
    except ValidationError as error:
        if any(problem["type"] != "extra_forbidden" for problem in error.errors()):
            return _unreadable_brief(record, _first_problem(error), max_original_bytes)
    try:
        # An object whose only problem was its extra fields; orjson's limits differ from pydantic's, hence the guard.
        document = orjson.loads(record.value)
        return Brief.model_validate({name: value for name, value in document.items() if name in Brief.model_fields})
    except orjson.JSONDecodeError as error:
        return _unreadable_brief(record, f"the record: {error}", max_original_bytes)
    except ValidationError as error:
        return _unreadable_brief(record, _first_problem(error), max_original_bytes)


def in_event_order(briefs: Iterable[Brief]) -> list[Brief]:
    """Oldest first, ties by id: the order every stage hands briefs on in, so later ones see event time."""
    return sorted(briefs, key=_event_order)


def _event_order(brief: Brief) -> tuple:
    return brief.event_time, brief.id


def read_brief_batch(
    records: Sequence[RawRecord], *, max_original_bytes: int
) -> tuple[list[tuple[DeadLetter, int]], list[tuple[Brief, int]]]:
    """A batch of an internal topic's records: its dead letters, and its briefs in event order.

    Each comes with its record's position in ``records``. The briefs of one
    page reach a partition from several others in any interleaving; ordering
    a batch by event time gives the story engine the same order however they
    interleaved.
    """
    letters, briefs = [], []
    for position, record in enumerate(records):
        read = read_brief(record, max_original_bytes=max_original_bytes)
        (letters if isinstance(read, DeadLetter) else briefs).append((read, position))
    briefs.sort(key=lambda item: _event_order(item[0]))
    return letters, briefs


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"]) or "the record"
    return f"{where}: {problem['msg']}"


def _unreadable_brief(record: RawRecord, problem: str, max_original_bytes: int) -> DeadLetter:
    message = f"not a brief this version can read ({problem})"
    return dead_letter(record, "invalid_brief", message, max_original_bytes=max_original_bytes)


class RecentIds:
    """The last ``capacity`` ids seen, oldest forgotten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def clear(self) -> None:
        self._ids.clear()

    def __contains__(self, item: str) -> bool:
        return item in self._ids

    def add(self, item: str) -> bool:
        """Remember ``item``; False when it was already remembered."""
        if item in self._ids:
            self._ids.move_to_end(item)
            return False
        self._ids[item] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


class FirstSightings:
    """Which candidate record first carried each brief id, forgotten once the stream has moved on.

    ``table`` maps a brief id to ``[fetched_at, partition, offset, recorded_at]``:
    the fetch time and the candidates-topic place of the candidate that first
    carried it, and its partition's clock when it was recorded. A partition's
    clock is the latest fetch time among its candidates, so entries are
    forgotten by event time: a replayed backlog forgets as the live feed did,
    and a restart does not reset the clock (it is read back from the table).
    An entry is forgotten once its partition's clock is ``retention`` seconds
    past its ``recorded_at`` (past its ``fetched_at`` for entries of three
    fields), not past its fetch time, so that a backfill of old pages is kept
    as long as live pages are. Without expiry the table, and the memory of
    every worker that holds it, grows with every brief ever seen.

    Entries are forgotten while a candidate of their own partition is sighted:
    a Faust table writes a deletion to the changelog partition of the record
    being processed, which for a table keyed like its topic is the entry's own.
    """

    def __init__(self, table: MutableMapping[str, list], retention: float, *, remember: int = 100_000) -> None:
        self.table = table
        self.retention = retention
        #: "partition:offset" of the candidates this process has let through, whatever rebalances came since.
        self._let_through = RecentIds(remember)
        self._clocks: dict[int, float] = {}
        #: Per partition, (recorded_at, brief id) of its entries, oldest first; None until read from the table.
        self._queues: dict[int, deque[tuple[float, str]]] | None = None

    def sight(self, brief_id: str, *, partition: int, offset: int, fetched_at: float) -> bool:
        """Record the candidate at ``partition``/``offset``; True when it is the first to carry ``brief_id``.

        True also for that same record read again by another process (after a
        crash before its offset was committed, when its brief may not have been
        forwarded), but not when this process let it through before: a record
        processed while a rebalance came, whose ack does not count, is read
        again by the worker that still holds its partition, and its brief,
        already on its way, must not be forwarded twice.
        """
        queue = self._queue(partition)
        clock = self._clocks[partition] = max(self._clocks.get(partition, fetched_at), fetched_at)
        horizon = clock - self.retention
        while queue and queue[0][0] < horizon:
            _, expired = queue.popleft()
            if expired in self.table:
                del self.table[expired]
        place = f"{partition}:{offset}"
        seen = self.table.get(brief_id)
        if seen is not None:
            return seen[1:3] == [partition, offset] and self._let_through.add(place)
        self.table[brief_id] = [fetched_at, partition, offset, clock]
        queue.append((clock, brief_id))
        self._let_through.add(place)
        return True

    def reload(self) -> None:
        """Read the entries' order and the clocks from the table again at the next sighting (after a rebalance)."""
        self._queues = None
        self._clocks.clear()

    def _queue(self, partition: int) -> deque[tuple[float, str]]:
        if self._queues is None:
            entries: dict[int, list[tuple[float, str]]] = {}
            for brief_id, entry in self.table.items():
                entries.setdefault(entry[1], []).append((entry[3] if len(entry) > 3 else entry[0], brief_id))
            self._queues = {}
            for owner, owned in entries.items():
                owned.sort()
                self._queues[owner] = deque(owned)
                self._clocks[owner] = owned[-1][0]
        return self._queues.setdefault(partition, deque())
