"""Input written to hurt: patterns that backtrack, markup that rescans, keys and fields of absurd size.

The bounds on time here are generous, for tiny inputs: they catch a cost that
grows exponentially or quadratically, not a slow machine.
"""

from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wirewatch.core import parser
from wirewatch.core.markup import html_to_text, looks_like_html
from wirewatch.core.parser import _DATELINE, MAX_CITY_CHARS, parse_page
from wirewatch.core.pipeline import MAX_DEAD_LETTER_KEY_BYTES, RawRecord, dead_letter, minimal_dead_letter, split_record
from wirewatch.errors import ParseError
from wirewatch.models import MAX_SOURCE_CHARS

STAMP = datetime(2026, 1, 21, 14, 40, tzinfo=timezone.utc)
NOW = STAMP + timedelta(minutes=1)
LIMITS = {"max_page_bytes": 2 * 1024 * 1024, "dead_letter_max_original_bytes": 65536}


def parse_seconds(page: str, **options) -> float:
    started = time.perf_counter()
    try:
        parse_page(page, fetched_at=STAMP, source="hostile", **options)
    except ParseError:
        pass
    return time.perf_counter() - started


def test_spaces_before_slashes_in_an_agency_list_do_not_backtrack():
    # 16 repeats took 25 s, each two more about eight times as long; 60 would outlast the universe.
    assert parse_seconds("AB (" + "A  /" * 60 + "A  !\n") < 1.0
    assert parse_seconds("AB (" + "A \t/ " * 60 + "A  !\n" * 50) < 1.0


def test_a_page_of_unclosed_comments_and_tags_is_read_in_linear_time():
    # 80 KB of "<!--" took about 10 s in a worker, 900 KiB about 40 minutes; "<p x='" was as bad in the HTML reader.
    for opener in ("<!--", "<p ", "<a href='", "<!doctype ", "<p x=\"", "<script>", "<![CDATA["):
        page = "<p>DAVOS (ANP) - Tekst.</p>" + opener * (256 * 1024 // len(opener))
        assert parse_seconds(page) < 3.0, opener


adversarial_line = st.lists(
    st.sampled_from(["A", "AB", " ", "  ", "\t", "/", "(", ")", "-", "–", ".", "'", '"', "<", ">", "<!--", "-->",
                     "<p ", "</", "ANP", "&", "&amp;", "16 minuten geleden", "2 hours ago", "\n", "Meer uit "]),
    min_size=1,
    max_size=120,
).map("".join)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(adversarial_line)
def test_any_line_of_separators_and_openers_parses_quickly(line):
    # Tiny inputs: anything beyond a small multiple of a millisecond is a pattern that backtracks.
    assert parse_seconds(line) < 0.25
    assert parse_seconds(line * 20) < 0.5


def test_the_agency_list_reads_what_it_read_before():
    for text, city, agencies in [
        ("WASHINGTON (ANP/RTR) - Tekst", "WASHINGTON ", "ANP/RTR"),
        ("DEN HAAG (ANP / AFP / RTR) – Tekst", "DEN HAAG ", "ANP / AFP / RTR"),
        ("PARIJS\t(AFP )  - Tekst", "PARIJS", "AFP "),
        ("NEW YORK (AP & DOW JONES) - Tekst", "NEW YORK ", "AP & DOW JONES"),
    ]:
        match = _DATELINE.match(text)
        assert match is not None, text
        assert (match.group("city"), match.group("agencies")) == (city, agencies)
    assert _DATELINE.match("ROME (" + "A" * 41 + ") - Tekst") is None  # no agency is that long
    assert _DATELINE.match("ROME (" + "/".join(["A"] * 9) + ") - Tekst") is None  # nor lists that many


def test_a_city_of_ten_thousand_capitals_is_no_dateline():
    page = "X" * 10_000 + " (ANP) - Tekst over niets.\n"
    with pytest.raises(ParseError) as refused:
        parse_page(page, fetched_at=STAMP, source="hostile")
    assert refused.value.reason == "no_briefs"
    longest = "LLANFAIRPWLLGWYNGYLLGOGERYCHWYRNDROBWLLLLANTYSILIOGOGOGOCH"
    assert len(longest) <= MAX_CITY_CHARS
    assert parse_page(f"{longest} (ANP) - Tekst.", fetched_at=STAMP, source="x").briefs[0].city == longest


def test_a_page_over_its_cpu_budget_is_dead_lettered_with_that_reason(seed_page):
    with pytest.raises(ParseError) as stopped:
        parse_page(seed_page * 40, fetched_at=STAMP, source="slow", budget_seconds=1e-9)
    assert stopped.value.reason == "parse_budget_exceeded"
    record = RawRecord(value=(seed_page * 40).encode(), key=b"https://example.org/p", timestamp=STAMP)
    outcome = split_record(record, now=NOW, parse_budget_seconds=1e-9, **LIMITS)
    assert outcome.briefs == []
    assert [letter.reason for letter in outcome.dead_letters] == ["parse_budget_exceeded"]
    # With the default budget the same page parses, and the budget is reset for the next page.
    assert split_record(record, now=NOW, **LIMITS).briefs
    assert parser._PARSE_DEADLINE.get() is None


def test_the_budget_stops_the_markup_reader_too():
    calls = []
    html_to_text("<p>x</p>" * 2000, spend=lambda: calls.append(1))
    assert len(calls) >= 2000 * 2 // 256 - 1


def test_a_bare_page_keyed_by_a_very_long_url_keeps_a_shortened_source(seed_page):
    key = ("https://example.org/" + "a" * 5000).encode()
    outcome = split_record(RawRecord(value=seed_page.encode(), key=key, timestamp=STAMP), now=NOW, **LIMITS)
    assert outcome.dead_letters == [] and len(outcome.briefs) == 8
    source = outcome.briefs[0].source
    assert len(source) == MAX_SOURCE_CHARS and source.startswith("https://example.org/aaa") and source.endswith("…")


def test_a_dead_letter_keeps_a_short_key_and_says_how_long_it_was():
    key = b"k" * 500_000
    letter = dead_letter(RawRecord(value=b"\xff" * 10, key=key), "invalid_utf8", "m" * 100_000, max_original_bytes=64)
    assert len(letter.model_dump_json()) < 8_000
    assert base64.b64decode(letter.source_key_base64) == key[:MAX_DEAD_LETTER_KEY_BYTES]
    assert (letter.source_key_size, letter.source_key_truncated) == (500_000, True)
    small = minimal_dead_letter(letter, "MessageSizeTooLargeError")
    assert (small.source_topic, small.source_offset, small.reason) == (letter.source_topic, 0, "invalid_utf8")
    assert small.original_base64 == "" and small.source_key_base64 is None
    assert "MessageSizeTooLargeError" in small.message


def test_html_reading_keeps_what_a_browser_shows():
    page = ("<html><head><title>t</title><script>if (a < b) { x = '</p>'; }</script></head><body>"
            "<p>DAVOS (ANP) - Een &amp; twee.</p><!-- weg --><div>Tweede <b>regel</b></div>"
            "<p>a < b en 3 > 2</p><style>p { color: red }</style><svg><text>weg</text></svg></body></html>")
    assert looks_like_html(page)
    assert html_to_text(page).split("\n") == ["DAVOS (ANP) - Een & twee.", "Tweede regel", "a < b en 3 > 2"]
    assert html_to_text("<p>open <!-- never closed</p>") == "open <!-- never closed"
    assert not looks_like_html("a <!-- b") and looks_like_html("a <!-- b --> c")
    assert html_to_text("<p>kept</p><script>" + "<p>x" * 1000) == "kept"  # a script never closed hides the rest
