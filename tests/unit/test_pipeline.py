"""Raw records → briefs and dead letters, without a broker."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wirewatch.core.parser import _CITY, _CLOSING_AGE, _DATELINE, _closing_ages, normalise, parse_page
from wirewatch.core.pipeline import (
    FirstSightings,
    RawRecord,
    RecentIds,
    decode_envelope,
    in_event_order,
    read_brief,
    read_brief_batch,
    split_record,
)
from wirewatch.errors import DecodeError, ParseError
from wirewatch.models import Brief, DeadLetter

STAMP = datetime(2026, 1, 21, 14, 40, tzinfo=timezone.utc)
NOW = STAMP + timedelta(minutes=1)
LIMITS = {"max_page_bytes": 64 * 1024, "dead_letter_max_original_bytes": 1024}


def envelope_bytes(**fields) -> bytes:
    document = {"source": "nos", "url": "https://example.org/p", "fetched_at": STAMP.isoformat(), "body": "x"}
    document.update(fields)
    return orjson.dumps({k: v for k, v in document.items() if v is not ...})


def split(value: bytes | None, **record) -> tuple[list[Brief], list]:
    outcome = split_record(RawRecord(value=value, **record), now=NOW, **LIMITS)
    return outcome.briefs, outcome.dead_letters


def only_reason(value: bytes | None, **record) -> str:
    briefs, letters = split(value, **record)
    assert briefs == []
    assert len(letters) == 1
    return letters[0].reason


def test_json_envelope(seed_page):
    briefs, letters = split(envelope_bytes(body=seed_page, section="Buitenland"))
    assert letters == []
    assert briefs == parse_page(seed_page, fetched_at=STAMP, source="nos", url="https://example.org/p").briefs


def test_bare_page_uses_header_source_and_record_time(seed_page):
    briefs, _ = split(seed_page.encode(), timestamp=STAMP, headers={"source": b"anp-feed"}, key=b"k")
    assert {(b.source, b.fetched_at) for b in briefs} == {("anp-feed", STAMP)}


def test_bare_page_falls_back_to_the_key_for_its_source(seed_page):
    briefs, _ = split(seed_page.encode(), timestamp=STAMP, key=b"scraper-3")
    assert {b.source for b in briefs} == {"scraper-3"}


@pytest.mark.parametrize(
    ("value", "record", "reason"),
    [
        (None, {}, "empty_message"),
        (b"", {}, "empty_message"),
        (b"  \n ", {}, "empty_message"),
        (b"\xff\xfeabc", {"key": b"k", "timestamp": STAMP}, "invalid_utf8"),
        (b"{not json", {}, "invalid_json"),
        (b"[" * 5000 + b"]" * 5000, {"key": b"k", "timestamp": STAMP}, "no_briefs"),
        (b"{" + b'"a":{' * 2000 + b"}" * 2001, {}, "invalid_json"),
        (b'{"source": "x"}', {}, "invalid_envelope"),
        (envelope_bytes(fetched_at=12), {}, "invalid_envelope"),
        (envelope_bytes(fetched_at="2026-01-21T14:40:00"), {}, "invalid_envelope"),
        (envelope_bytes(source=None), {}, "invalid_envelope"),
        (envelope_bytes(body=["a"]), {}, "invalid_envelope"),
        (envelope_bytes(content_type="application/pdf"), {}, "invalid_envelope"),
        (b'"just a string"'.replace(b'"', b"{", 1), {}, "invalid_json"),
        (b"PARIJS (ANP) - Een.", {"timestamp": STAMP}, "missing_source"),
        (b"PARIJS (ANP) - Een.", {"key": b"k"}, "missing_timestamp"),
        (envelope_bytes(body=""), {}, "empty_page"),
        (envelope_bytes(body="no dateline here"), {}, "no_briefs"),
        (b"x" * (64 * 1024 + 1), {}, "too_large"),
        (envelope_bytes(fetched_at="2099-01-01T00:00:00+00:00"), {}, "time_in_future"),
        (envelope_bytes(fetched_at="1899-01-01T00:00:00+00:00"), {}, "time_out_of_range"),
        (envelope_bytes(published_at="2099-01-01T00:00:00+00:00"), {}, "time_in_future"),
        (envelope_bytes(body="\x00\x01\x02"), {}, "empty_page"),
        (envelope_bytes(body="<script>alert(1)</script>"), {}, "empty_page"),
    ],
)
def test_bad_records_become_one_dead_letter_with_a_reason(value, record, reason):
    assert only_reason(value, **record) == reason


def test_dead_letter_carries_origin_and_bytes():
    _, [letter] = split(b"\xffoops", topic="wire.raw", partition=2, offset=41, key=b"k", timestamp=STAMP)
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("wire.raw", 2, 41)
    assert base64.b64decode(letter.original_base64) == b"\xffoops"
    assert base64.b64decode(letter.source_key_base64) == b"k"
    assert letter.original_size == 5 and not letter.original_truncated
    assert letter.message


def test_dead_letter_of_a_huge_value_keeps_only_its_start():
    value = b"y" * (100 * 1024)
    _, [letter] = split(value)
    assert letter.reason == "too_large"
    assert base64.b64decode(letter.original_base64) == value[:1024]
    assert letter.original_size == len(value) and letter.original_truncated


def test_rejected_items_are_dead_lettered_beside_the_good_briefs():
    page = "Meer uit Buitenland\nPARIJS (ANP) -\n4 minuten geledenROME (ANP) - Twee.\n5 minuten geledenBERN (ANP) -\n1 uur geleden"
    briefs, letters = split(envelope_bytes(body=page))
    assert [b.city for b in briefs] == ["ROME"]
    assert [(letter.reason, letter.rejected_count) for letter in letters] == [("empty_text", 2)]


def test_decode_envelope_raises_the_project_error():
    with pytest.raises(DecodeError) as caught:
        decode_envelope(RawRecord(value=b"{}"), max_page_bytes=10)
    assert caught.value.reason == "invalid_envelope"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=2000))
def test_any_text_yields_briefs_or_the_parse_error(text):
    try:
        parsed = parse_page(text, fetched_at=STAMP, source="fuzz")
    except ParseError as error:
        assert error.reason
        return
    assert parsed.briefs
    for position, brief in enumerate(parsed.briefs):
        assert brief.position == position and brief.text and brief.city
        # The parser builds briefs without validation: each must be what validation gives.
        assert Brief.model_validate(brief.model_dump()) == brief


dateline_soup = st.lists(
    st.sampled_from(
        ["DAVOS (ANP) - ", "DEN HAAG (ANP/RTR) – ", "Meer uit Buitenland\n", "16 minuten geleden", "gisteren",
         "\n", "\r\n", "tekst ", '"3 uur geleden" ', "'S-HERTOGENBOSCH (ANP) - ", "5 minutes ago", "(", ")", "-",
         # ages in capitals, letters a case-insensitive pattern takes for ASCII ones, and characters whose
         # UTF-16 bytes look like ASCII capitals or take four bytes
         "2 UUR GELEDEN", "ZOJUıST", "yeſterday", "Ł", "䅁", "🙂", "TEL AVIV  (AFP) - ", "SINT-PETERSBURG\t(RTR) - "]
    )
    | st.text(max_size=20),
    max_size=60,
).map("".join)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(dateline_soup)
def test_page_like_text_yields_briefs_or_the_parse_error(text):
    test_any_text_yields_briefs_or_the_parse_error.hypothesis.inner_test(text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(dateline_soup)
def test_the_fast_closing_age_scan_finds_what_the_pattern_finds(text):
    text = normalise(text)
    fast = [(m.span(), m.groupdict()) for m in _closing_ages(text)]
    assert fast == [(m.span(), m.groupdict()) for m in _CLOSING_AGE.finditer(text)]


# The dateline as first written: a lazy city, one character per repetition (slow, plainly right).
_PLAIN_CITY = r"['’]?[^\W\d_](?:[^\W\d_]|[ .'’\-])*?"
_PLAIN_DATELINE = re.compile(_DATELINE.pattern.replace(_CITY, _PLAIN_CITY))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(dateline_soup)
def test_the_possessive_city_pattern_reads_datelines_as_the_plain_one_does(text):
    assert _PLAIN_DATELINE.pattern != _DATELINE.pattern
    for start in range(len(text)):
        fast, plain = _DATELINE.match(text, start), _PLAIN_DATELINE.match(text, start)
        assert (fast is None) == (plain is None)
        if fast is not None:
            assert fast.end() == plain.end()
            assert fast.group("city").rstrip() == plain.group("city")
            assert fast.group("agencies") == plain.group("agencies")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=3000) | dateline_soup.map(str.encode), st.none() | st.binary(max_size=20))
def test_any_record_yields_briefs_or_dead_letters_never_an_exception(value, key):
    outcome = split_record(RawRecord(value=value, key=key, timestamp=STAMP), now=NOW, **LIMITS)
    assert outcome.briefs or outcome.dead_letters
    for letter in outcome.dead_letters:
        assert letter.reason and letter.message


def test_recent_ids_forget_the_least_recently_seen_first():
    recent = RecentIds(2)
    assert [recent.add(x) for x in ("a", "b", "a", "c")] == [True, True, False, True]
    assert len(recent) == 2
    assert recent.add("a") is False  # "a" was seen again after "b", so "b" went first
    assert recent.add("b") is True
    assert "b" in recent and "c" not in recent
    assert RecentIds(0).add("a") and RecentIds(0).add("a")


HOUR = 3600.0


def test_first_sightings_forward_an_id_once_and_again_only_for_the_record_that_first_carried_it():
    table: dict[str, list] = {}
    sightings = FirstSightings(table, retention=24 * HOUR)
    assert sightings.sight("a", partition=0, offset=5, fetched_at=HOUR) is True
    assert sightings.sight("a", partition=0, offset=9, fetched_at=2 * HOUR) is False  # a later snapshot
    # The same record read again by a process that took over after a crash: its brief may never have gone out.
    after_a_crash = FirstSightings(table, retention=24 * HOUR)
    assert after_a_crash.sight("a", partition=0, offset=5, fetched_at=HOUR) is True
    assert table == {"a": [HOUR, 0, 5, HOUR]}


def test_first_sightings_let_a_record_through_once_per_process_whatever_rebalances_come():
    # A record processed while a rebalance came has its ack discarded and is read again by the same
    # worker: its brief is already on its way and must not be forwarded twice.
    table: dict[str, list] = {}
    sightings = FirstSightings(table, retention=24 * HOUR)
    assert sightings.sight("a", partition=0, offset=5, fetched_at=HOUR) is True
    sightings.reload()  # what a rebalance does
    assert sightings.sight("a", partition=0, offset=5, fetched_at=HOUR) is False
    assert sightings.sight("b", partition=1, offset=5, fetched_at=HOUR) is True, "places are per partition"


def test_first_sightings_forget_an_id_once_its_partition_has_moved_on_past_the_retention():
    table: dict[str, list] = {}
    sightings = FirstSightings(table, retention=24 * HOUR)
    sightings.sight("old", partition=0, offset=0, fetched_at=0.0)
    sightings.sight("other-partition", partition=1, offset=0, fetched_at=0.0)
    sightings.sight("young", partition=0, offset=1, fetched_at=2 * HOUR)
    assert sightings.sight("x", partition=0, offset=2, fetched_at=24 * HOUR) and "old" in table  # not past yet
    sightings.sight("y", partition=0, offset=3, fetched_at=25 * HOUR)
    assert "old" not in table and "young" in table
    assert "other-partition" in table  # its own partition's clock has not moved
    # Forgotten: a page that lists it again forwards it again, as a new sighting.
    assert sightings.sight("old", partition=0, offset=4, fetched_at=25 * HOUR) is True
    assert table["old"] == [25 * HOUR, 0, 4, 25 * HOUR]


def test_first_sightings_keep_a_backfill_of_old_pages_as_long_as_live_ones():
    """The clock is the latest fetch time of the partition: old pages neither move it back nor expire at once."""
    table: dict[str, list] = {}
    sightings = FirstSightings(table, retention=24 * HOUR)
    sightings.sight("live", partition=0, offset=0, fetched_at=100 * HOUR)
    assert sightings.sight("archived", partition=0, offset=1, fetched_at=10 * HOUR) is True
    sightings.sight("later", partition=0, offset=2, fetched_at=101 * HOUR)
    assert sightings.sight("archived", partition=0, offset=3, fetched_at=10 * HOUR) is False  # still remembered
    assert table["archived"] == [10 * HOUR, 0, 1, 100 * HOUR]
    sightings.sight("much-later", partition=0, offset=4, fetched_at=125 * HOUR)
    assert "archived" not in table and "live" not in table and "later" in table


def test_first_sightings_read_their_order_and_clocks_back_from_a_recovered_table():
    """After a rebalance the table holds what the changelog recovered, including entries of three fields."""
    recovered = {
        "three-fields": [1 * HOUR, 0, 0],
        "recorded-late": [0.0, 0, 1, 30 * HOUR],  # a backfilled page: kept from when it was recorded
        "recent": [30 * HOUR, 0, 2, 30 * HOUR],
        "elsewhere": [0.0, 3, 0, 0.0],
    }
    table = dict(recovered)
    sightings = FirstSightings(table, retention=24 * HOUR)
    # The clock is back at 30 h without any new fetch time: an old candidate sighted now expires what 30 h does.
    assert sightings.sight("recent", partition=0, offset=7, fetched_at=0.0) is False
    assert "three-fields" not in table and "recorded-late" in table and "elsewhere" in table
    sightings.sight("z", partition=0, offset=8, fetched_at=55 * HOUR)
    assert sorted(table) == ["elsewhere", "z"]


def test_first_sightings_reload_after_the_table_changed_hands():
    table: dict[str, list] = {}
    sightings = FirstSightings(table, retention=24 * HOUR)
    sightings.sight("a", partition=0, offset=0, fetched_at=0.0)
    # Meanwhile another worker owned partition 0: it forgot "a" and recorded "b" (its changelog, recovered here).
    del table["a"]
    table["b"] = [20 * HOUR, 0, 1, 20 * HOUR]
    sightings.reload()
    sightings.sight("c", partition=0, offset=2, fetched_at=30 * HOUR)
    assert sorted(table) == ["b", "c"]
    sightings.sight("d", partition=0, offset=3, fetched_at=45 * HOUR)
    assert sorted(table) == ["c", "d"]


def test_a_partition_behind_without_progress_is_stalled_after_the_set_time():
    from wirewatch.core.progress import StallWatch

    watch = StallWatch(after_seconds=60)
    raw = ("wire.raw", 0)
    assert watch.observe(0, {raw: 10}, {raw: 5}) == set()
    assert watch.observe(30, {raw: 12}, {raw: 8}) == set()  # moving: not stalled
    assert watch.observe(80, {raw: 12}, {raw: 8}) == set()  # unmoved for 50 s
    assert watch.observe(91, {raw: 12}, {raw: 8}) == {raw}
    assert watch.observe(100, {raw: 12}, {raw: 8}) == set() and watch.stalled == {raw}  # reported once
    assert watch.observe(110, {raw: 12}, {raw: 12}) == set() and watch.stalled == set()  # caught up
    idle = ("wire.raw", 1)
    assert watch.observe(500, {idle: 3}, {idle: 3}) == set()  # nothing waiting is never stalled


def test_a_brief_written_by_a_newer_version_is_read_and_a_broken_one_is_dead_lettered(seed_page):
    brief = parse_page(seed_page, fetched_at=datetime(2026, 1, 21, 14, 40, tzinfo=timezone.utc), source="seed").briefs[0]
    newer = orjson.dumps({**brief.model_dump(mode="json"), "sentiment": 0.4})
    with pytest.raises(ValueError):
        Brief.model_validate_json(newer)  # the model itself refuses fields it does not know
    assert read_brief(RawRecord(newer, topic="candidates"), max_original_bytes=100) == brief

    broken = orjson.dumps({**brief.model_dump(mode="json"), "event_time": "yesterday", "sentiment": 0.4})
    for value, problem in ((broken, "event_time"), (b"[1, 2]", "the record"), (b"{not json", "the record"), (None, "")):
        letter = read_brief(RawRecord(value, topic="candidates", partition=2, offset=9), max_original_bytes=100)
        assert isinstance(letter, DeadLetter), value
        assert letter.reason == "invalid_brief"
        assert letter.message.startswith("not a brief this version can read (") and problem in letter.message
        assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("candidates", 2, 9)


def test_a_story_batch_is_read_in_event_order_with_its_unreadable_records_apart(seed_page):
    briefs = parse_page(seed_page, fetched_at=datetime(2026, 1, 21, 14, 40, tzinfo=timezone.utc), source="seed").briefs
    shuffled = [briefs[5], briefs[2], briefs[7], briefs[0]]
    records = [RawRecord(orjson.dumps(brief.model_dump(mode="json")), topic="story-input", offset=i)
               for i, brief in enumerate(shuffled)]
    records.insert(2, RawRecord(b"{not json", topic="story-input", offset=99))
    letters, ordered = read_brief_batch(records, max_original_bytes=100)
    assert [(letter.source_offset, position) for letter, position in letters] == [(99, 2)]
    assert [brief for brief, _ in ordered] == in_event_order(shuffled)
    assert [b.event_time for b, _ in ordered] == sorted(b.event_time for b in shuffled)
    assert all(records[position].value == orjson.dumps(brief.model_dump(mode="json")) for brief, position in ordered)
