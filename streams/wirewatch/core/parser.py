"""Split a raw wire page into briefs.

A page is an optional lead article (headline line, then a body that opens with
a dateline such as ``WASHINGTON (ANP/RTR) - ``), then optionally a list
section opened by ``Meer uit <section>`` / ``More from <section>``. In the list
every brief opens with a dateline and is closed by its relative age
(``16 minuten geleden``, ``2 hours ago``, ``gisteren``); the age stands at the
start of a line and is glued to the next brief's dateline, and the last age
closes the page.

Only an age at the start of a line, or glued directly to the next dateline,
closes a brief: ``het was 3 uur geleden al duidelijk`` inside a brief's text is
text. Pure Python: no Kafka, no Faust.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from ..errors import ParseError
from ..models import Brief, Precision
from .markup import html_to_text, looks_like_html

__all__ = ["ParsedPage", "Rejected", "parse_page", "DEFAULT_PARSE_BUDGET", "brief_id", "Age", "parse_age", "MAX_AGE", "clear_caches"]

# A dateline city is printed in capitals: letters (any script), spaces,
# hyphens, dots and apostrophes ('S-HERTOGENBOSCH, SINT-PETERSBURG, TEL AVIV).
# Written as runs of letters and of separators, taken whole (possessive): a
# repeat per character made the city most of a dateline's matching time. No
# run can hold the "(" that follows the city, so giving characters back could
# never help a match; the city may keep trailing spaces, which are stripped.
_CITY = r"['’]?[^\W\d_]++(?:[ .'’\-]++[^\W\d_]*+)*+"
# Every repeat in the agency list is possessive and bounded. An agency may end
# in spaces, and so may the gap before a "/": with ordinary repeats a line such
# as "AB (A  /A  /A  /… !" split those spaces every possible way before failing,
# doubling the time with each "/" (a 112-byte page took 50 s). No agency holds
# "/" or ")", so taking its characters whole loses no match.
MAX_AGENCY_CHARS = 40
MAX_AGENCIES = 8
#: Longer capitals before "(" are a shouting sentence, not a city (the longest place names have about 60 letters).
MAX_CITY_CHARS = 64
_AGENCY = rf"[^\W_][\w.&' ]{{0,{MAX_AGENCY_CHARS - 1}}}+"
_DATELINE = re.compile(
    rf"(?P<city>{_CITY})[ \t]*+\((?P<agencies>{_AGENCY}(?:[ \t]*+/[ \t]*+{_AGENCY}){{0,{MAX_AGENCIES - 1}}}+)\)"
    rf"[ \t]*+[-–—][ \t]*+"
)

#: Ages beyond this are not believed ("99999 dagen geleden"); wire lists show hours and days.
MAX_AGE = timedelta(days=366)

_DATELINE_AHEAD = _DATELINE.pattern.replace("?P<city>", "?:").replace("?P<agencies>", "?:")

_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "een": 1, "één": 1}
_UNITS: dict[str, tuple[timedelta, Precision, str]] = {}
for _names, _delta, _precision, _lang in (
    (("seconde", "seconden"), timedelta(seconds=1), "minute", "nl"),
    (("minuut", "minuten"), timedelta(minutes=1), "minute", "nl"),
    (("uur",), timedelta(hours=1), "hour", "nl"),
    (("dag", "dagen"), timedelta(days=1), "day", "nl"),
    (("week", "weken"), timedelta(weeks=1), "day", "nl"),
    (("second", "seconds", "sec", "secs"), timedelta(seconds=1), "minute", "en"),
    (("minute", "minutes", "min", "mins"), timedelta(minutes=1), "minute", "en"),
    (("hour", "hours"), timedelta(hours=1), "hour", "en"),
    (("day", "days"), timedelta(days=1), "day", "en"),
    (("weeks",), timedelta(weeks=1), "day", "en"),
):
    for _name in _names:
        _UNITS[_name] = (_delta, _precision, _lang)

_RELATIVE_DAYS: dict[str, tuple[int, str]] = {"gisteren": (1, "nl"), "yesterday": (1, "en")}
_JUST_NOW: dict[str, str] = {"zojuist": "nl", "just now": "en"}

_AGE_BODY = (
    r"(?:(?P<count>\d{1,7}|an?|one|een|één)[ \t]+(?P<unit>"
    + "|".join(sorted(_UNITS, key=len, reverse=True))
    + r")[ \t]+(?:geleden|ago)|(?P<word>"
    + "|".join(sorted([*_RELATIVE_DAYS, *_JUST_NOW], key=len, reverse=True))
    + r"))"
)
_AGE_ONLY = re.compile(rf"(?i){_AGE_BODY}")
# A closing age: at the start of a line and followed by the end of the line or
# by the next dateline; or glued straight onto the next dateline.
# Only the age is matched regardless of case: the dateline classes do not
# depend on case, and checking them case-insensitively made every search slower.
_LINE_AGE = rf"^[ \t]*(?P<age>(?i:{_AGE_BODY}))[ \t]*"
_GLUED_AGE = rf"(?<=[.!?\"”’')\]])[ \t]*(?P<glued>(?i:{_AGE_BODY.replace('?P<', '?P<g_')}))"
_CLOSING_AGE = re.compile(rf"(?m)(?:{_LINE_AGE}(?=$|{_DATELINE_AHEAD})|{_GLUED_AGE}(?={_DATELINE_AHEAD}))")
# _CLOSING_AGE without its look at what follows the age: _closing_ages takes
# that look itself, through a cache, since the dateline after an age is the
# start of a brief that most snapshots repeat.
_AGE_CANDIDATE = re.compile(rf"(?m){_LINE_AGE}|{_GLUED_AGE}")
# Every age holds one of these words; the closing-age pattern is only tried on
# lines that do (trying it at every position cost most of the parse).
_AGE_WORDS = ("geleden", "ago", *_RELATIVE_DAYS, *_JUST_NOW)
_AGE_WORD_ANY_CASE = re.compile("(?i)" + "|".join(re.escape(word) for word in _AGE_WORDS))
_AGE_WORDS_UTF16 = tuple(word.encode("utf-16-le") for word in _AGE_WORDS)
# Letters a case-insensitive pattern takes for an ASCII letter although they are none (İ ı ſ and the Kelvin sign).
_ASCII_LOOKALIKES = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}
_TO_ASCII = str.maketrans(_ASCII_LOOKALIKES)
_SECTION = re.compile(r"(?im)^[ \t]*(?P<marker>meer uit|more from)[ \t]+(?P<section>[^\n]{1,80}?)[ \t]*$")
# C0/C1 controls other than tab and newline carry no meaning in wire text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _collapse(text: str) -> str:
    """Runs of whitespace as one space, none at the ends (``str.split`` and ``\\s`` agree on what whitespace is)."""
    return " ".join(text.split())


#: CPU seconds one page may take to parse. Every pattern is linear, so a page of
#: the largest allowed size parses well within it; the budget is the backstop
#: for a cost nobody foresaw, so that one record cannot hold a worker's event loop.
DEFAULT_PARSE_BUDGET = 2.0

# The CPU time (this thread's) at which the page being parsed has overspent, if it has a budget.
_PARSE_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("parse_deadline", default=None)


_spent_steps = 0


def _spend() -> None:
    """Stop the parse with ``parse_budget_exceeded`` once the page has had its CPU time.

    Called between lines, items and tags, each of which takes time linear in
    its own length; the clock is read every 16th call (reading it every time
    cost 4% of a normal parse), so a parse overruns its budget by at most 16 of them.
    """
    global _spent_steps
    _spent_steps += 1
    if _spent_steps & 15:
        return
    deadline = _PARSE_DEADLINE.get()
    if deadline is not None and time.thread_time() > deadline:
        raise ParseError("parse_budget_exceeded", "the page took longer to parse than its CPU budget allows")


_PRECISION_STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def _floor(moment: datetime, precision: str) -> datetime:
    if precision == "minute":
        return moment.replace(second=0, microsecond=0)
    if precision == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


class _FetchFloors(dict):
    """``fetched_at`` floored to each precision, worked out once per page on first use."""

    def __init__(self, fetched_at: datetime) -> None:
        super().__init__()
        self.fetched_at = fetched_at

    def __missing__(self, precision: str) -> datetime:
        floor = self[precision] = _floor(self.fetched_at, precision)
        return floor


@dataclass(frozen=True)
class Age:
    """A relative age as printed on a page."""

    text: str
    delta: timedelta
    precision: Precision
    language: str

    def published_at(self, fetched_at: datetime) -> datetime:
        """``fetched_at`` minus the age, floored to the age's precision."""
        return _floor(fetched_at - self.delta, self.precision)

    @functools.cached_property
    def _whole_steps(self) -> bool:
        return self.delta % _PRECISION_STEP[self.precision] == timedelta(0)

    def _published_at_from(self, floors: _FetchFloors) -> datetime:
        # An age of whole minutes (hours, days) moves the floored fetch time by itself: no flooring per brief.
        if self._whole_steps:
            return floors[self.precision] - self.delta
        return self.published_at(floors.fetched_at)


def parse_age(text: str) -> Age | None:
    """Read one relative age such as ``2 uur geleden``; ``None`` when it is not one."""
    match = _AGE_ONLY.fullmatch(text.strip())
    if match is None:
        return None
    return _age_from_groups(match.group(0), match.group("count"), match.group("unit"), match.group("word"))


def _fold(word: str) -> str:
    """A word of an age as the tables spell it, whatever case the pattern matched it in."""
    return word.translate(_TO_ASCII).lower()


@functools.lru_cache(maxsize=1024)
def _age_from_groups(text: str, count: str | None, unit: str | None, word: str | None) -> Age:
    text = _collapse(text)
    if word is not None:
        word = _collapse(_fold(word))
        if word in _RELATIVE_DAYS:
            days, language = _RELATIVE_DAYS[word]
            return Age(text, timedelta(days=days), "day", language)
        return Age(text, timedelta(0), "minute", _JUST_NOW[word])
    assert count is not None and unit is not None
    number = _NUMBER_WORDS.get(_fold(count)) or int(count)
    step, precision, language = _UNITS[_fold(unit)]
    # Absurd ages ("99999 dagen geleden") would leave datetime's range.
    delta = min(step * number, MAX_AGE + timedelta(days=1))
    return Age(text, delta, precision, language)


@dataclass(frozen=True)
class Rejected:
    """A fragment of a page that could not become a brief, and why."""

    reason: str
    message: str
    text: str
    count: int = 1


@dataclass(frozen=True)
class ParsedPage:
    """What one page yields: its briefs in page order and what had to be rejected."""

    briefs: list[Brief]
    section: str | None
    language: str | None
    rejected: list[Rejected] = field(default_factory=list)
    #: Briefs read but not built: their ids were refused by ``parse_page``'s ``keep``.
    left_out: int = 0


@dataclass(frozen=True)
class _Lead:
    body: str
    headline: str | None = None


def brief_id(city: str | None, agencies: list[str], text: str) -> str:
    """A stable id from what a brief says, so every snapshot of it gets the same one."""
    canonical = "\x1f".join(
        [
            (city or "").casefold(),
            "/".join(a.casefold() for a in agencies),
            _collapse(text).casefold(),
        ]
    )
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=10).hexdigest()


def normalise(text: str) -> str:
    """Plain text (markup removed), Unicode NFC, Unix newlines, no BOM or control characters, no trailing blanks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    if looks_like_html(text):
        text = html_to_text(text, spend=_spend)
    lines = unicodedata.normalize("NFC", text).split("\n")
    # Most lines are printable throughout; only the others are searched for controls.
    return "\n".join(
        (_CONTROL.sub("", line) if not line.isprintable() else line).rstrip() for line in lines
    ).strip("\n")


def _split_dateline(body: str) -> tuple[str | None, list[str], str]:
    """City, agencies and the text after a dateline that opens ``body``."""
    match = _DATELINE.match(body)
    if match is None or not _is_city(match.group("city")):
        return None, [], body.strip()
    agencies = [a.strip() for a in match.group("agencies").split("/") if a.strip()]
    return _collapse(match.group("city")), agencies, body[match.end() :].strip()


def _is_city(city: str) -> bool:
    return city.isupper() and 2 <= len(city.strip()) <= MAX_CITY_CHARS


def _opens_with_dateline(text: str) -> bool:
    return _split_dateline(text)[0] is not None


def _closing_ages(text: str) -> Iterator[re.Match[str]]:
    """What ``_CLOSING_AGE.finditer(text)`` finds, trying the pattern only from lines that hold an age word.

    A closing age never spans a newline, so no match starts before the line
    of its age word: searching from that line's start finds every match. An
    age can match only one way at a given position, so a candidate that is
    not followed as it must be is passed over for the next position, as the
    pattern would be; the groups of the matches yielded are ``_CLOSING_AGE``'s.
    """
    position = 0
    for word_start in _age_word_starts(text):
        if word_start < position:
            continue
        _spend()
        search_from = max(position, text.rfind("\n", 0, word_start) + 1)
        while True:
            match = _AGE_CANDIDATE.search(text, search_from)
            if match is None:
                return
            if _closes(text, match):
                break
            search_from = match.start() + 1
        yield match
        position = match.end()


def _closes(text: str, candidate: re.Match[str]) -> bool:
    """Whether what follows a candidate age makes it a closing age: the next dateline, or the end of its line."""
    end = candidate.end()
    line_end = text.find("\n", end)
    rest = text[end:] if line_end < 0 else text[end:line_end]
    if not rest:
        return candidate.group("age") is not None
    return _dateline_ahead(rest)


#: Longer texts are read past the caches: their entries are counted, not weighed, and pages
#: of long items would otherwise fill them with up to 8,192 copies of the longest.
_LONGEST_CACHED_TEXT = 4096


def _cached_unless_long(function: Callable) -> Callable:
    """``function`` behind an LRU cache of 8,192 calls whose text is at most ``_LONGEST_CACHED_TEXT`` long.

    A call with a longer text is computed afresh and not kept.
    """
    cached = functools.lru_cache(maxsize=8192)(function)

    @functools.wraps(function)
    def call(text: str, *args):
        if len(text) > _LONGEST_CACHED_TEXT:
            return function(text, *args)
        return cached(text, *args)

    call.cache_info, call.cache_clear = cached.cache_info, cached.cache_clear
    return call


@_cached_unless_long
def _dateline_ahead(line: str) -> bool:
    return _DATELINE.match(line) is not None


def _age_word_starts(text: str) -> list[int]:
    """Where an age word, in any case, starts in ``text``, in order (inside a longer word too).

    The age words are ASCII, and ``bytes.lower`` folds ASCII letters alone,
    several times faster than ``str.lower`` folds text with any non-ASCII
    character. In UTF-16 every character of the Basic Multilingual Plane
    takes two bytes, so a match at an even byte offset is whole characters,
    ASCII letters in either case, starting at half that offset; a match at
    an odd offset straddles characters and is passed over.
    """
    folded = text.encode("utf-16-le", "surrogatepass").lower()
    # Characters beyond the Basic Multilingual Plane take four bytes; look-alike letters are no ASCII ones.
    if len(folded) != 2 * len(text) or any(letter in text for letter in _ASCII_LOOKALIKES):
        return [word.start() for word in _AGE_WORD_ANY_CASE.finditer(text)]
    starts = []
    for word in _AGE_WORDS_UTF16:
        start = folded.find(word)
        while start >= 0:
            if start % 2 == 0:
                starts.append(start // 2)
                start = folded.find(word, start + len(word))
            else:
                start = folded.find(word, start + 1)
    starts.sort()
    return starts


def _detect_page_language(text: str, section_marker: str | None) -> str | None:
    if section_marker is not None:
        return "nl" if section_marker.lower() == "meer uit" else "en"
    for match in _closing_ages(text):
        return _age_from_match(match).language
    return None


def _age_from_match(match: re.Match[str]) -> Age:
    text = match.group("age")
    if text is not None:
        return _age_from_groups(text, *match.group("count", "unit", "word"))
    return _age_from_groups(match.group("glued"), *match.group("g_count", "g_unit", "g_word"))


def _lead(region: str) -> _Lead | None:
    lines = [line for line in region.split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return None
    if _opens_with_dateline(lines[0]):
        return _Lead("\n".join(lines))
    if len(lines) > 1 and _opens_with_dateline(lines[1]):
        return _Lead("\n".join(lines[1:]), headline=lines[0].strip())
    return None


def _list_items(region: str) -> list[tuple[_Item, Age | None]]:
    """Every item of a list region in page order, with the age that closes it (None where none is printed)."""
    items: list[tuple[_Item, Age | None]] = []
    start = 0
    for match in _closing_ages(region):
        chunk_items = _chunk_items(region[start : match.start()])
        if chunk_items:
            # Only the last item before a closing age is closed by it.
            items.extend((item, None) for item in chunk_items[:-1])
            items.append((chunk_items[-1], _age_from_match(match)))
        start = match.end()
    items.extend((item, None) for item in _chunk_items(region[start:]))
    return items


@_cached_unless_long
def _chunk_items(chunk: str) -> tuple[_Item, ...]:
    """The items in the text between two closing ages.

    Cached: every snapshot of a page repeats most of its items word for word,
    each between the same two ages' positions.
    """
    return tuple(_item(body, "brief") for body in _item_bodies(chunk))


def _item_bodies(chunk: str) -> tuple[str, ...]:
    """The items in the text between two closing ages.

    Several line-opening datelines in one chunk are briefs whose ages are
    missing from the page.
    """
    if not chunk.strip():
        return ()
    starts = [0]
    offset = 0
    for line in chunk.split("\n"):
        _spend()
        if offset and _opens_with_dateline(line):
            starts.append(offset)
        offset += len(line) + 1
    bodies = (chunk[a:b] for a, b in zip(starts, [*starts[1:], len(chunk)]))
    return tuple(body for body in bodies if body.strip())


def parse_page(
    page: str,
    *,
    fetched_at: datetime,
    source: str,
    url: str | None = None,
    section: str | None = None,
    lead_published_at: datetime | None = None,
    max_briefs: int = 500,
    keep: Callable[[str], bool] | None = None,
    budget_seconds: float | None = None,
) -> ParsedPage:
    """Split ``page`` into briefs.

    ``fetched_at`` must carry a UTC offset: list briefs' ``published_at`` is
    ``fetched_at`` minus their printed age. ``lead_published_at`` is the lead's
    publication time when the producer knows it; the page does not print it.
    ``section`` names the page's section when the page has no list header.

    A page with more than ``max_briefs`` items keeps the first ones and
    rejects the rest (reason ``too_many_briefs``), which bounds the work and
    memory one page can cost. An age over :data:`MAX_AGE` is not believed: the
    brief keeps its ``age_text`` but gets no ``published_at``.

    ``keep``, when given, decides by brief id which briefs are built; the
    others are only counted (``left_out``). A worker that has forwarded most
    of a snapshot's briefs already builds models for the new ones alone.

    ``budget_seconds`` caps the CPU time of the parse: past it the parse stops
    with :class:`ParseError` ``parse_budget_exceeded`` (see
    :data:`DEFAULT_PARSE_BUDGET`). ``None`` parses without a cap.

    Raises :class:`ParseError` when the page holds no brief at all.
    """
    if fetched_at.tzinfo is None or fetched_at.utcoffset() is None:
        raise ValueError("fetched_at must be timezone-aware")
    deadline = None if budget_seconds is None else time.thread_time() + budget_seconds
    token = _PARSE_DEADLINE.set(deadline)
    try:
        return _parse_page(page, fetched_at, source, url, section, lead_published_at, max_briefs, keep)
    finally:
        _PARSE_DEADLINE.reset(token)


def _parse_page(
    page: str,
    fetched_at: datetime,
    source: str,
    url: str | None,
    section: str | None,
    lead_published_at: datetime | None,
    max_briefs: int,
    keep: Callable[[str], bool] | None,
) -> ParsedPage:
    text = normalise(page)
    if not text.strip():
        raise ParseError("empty_page", "the page is empty")

    marker = _SECTION.search(text)
    if marker is not None:
        lead_region, list_region = text[: marker.start()], text[marker.end() :]
        section = marker.group("section").strip()
        marker_word = marker.group("marker")
    else:
        lead_region, list_region, marker_word = text, "", None
        # A page that is only a list has no header but does have closing ages.
        if _lead(text) is None or _opens_with_dateline(text):
            if next(_closing_ages(text), None) is not None:
                lead_region, list_region = "", text

    lead = _lead(lead_region)
    # (kind, item, closing age, headline) in page order
    entries: list[tuple[str, _Item, Age | None, str | None]] = []
    if lead is not None:
        entries.append(("lead", _item(lead.body, "lead"), None, lead.headline))
    entries.extend(("brief", item, age, None) for item, age in _list_items(list_region))
    language = _detect_page_language(text, marker_word)

    briefs: list[Brief] = []
    rejected: list[Rejected] = []
    if len(entries) > max_briefs:
        extra = len(entries) - max_briefs
        rejected.append(
            Rejected("too_many_briefs", f"the page has {len(entries)} items; only the first {max_briefs} are read",
                     "", extra)
        )
        entries = entries[:max_briefs]
    floors = _FetchFloors(fetched_at)
    position = left_out = 0
    for kind, item, age, headline in entries:
        _spend()
        city = item.city
        if city is None:
            rejected.append(Rejected("no_dateline", "a list item does not open with a dateline", item.printed))
            continue
        if not item.text:
            rejected.append(Rejected("empty_text", f"the {city} dateline has no text after it", item.printed))
            continue
        position += 1
        if keep is not None and not keep(item.id):
            left_out += 1
            continue
        if age is not None and age.delta <= MAX_AGE:
            published_at = age._published_at_from(floors)
            precision: Precision | None = age.precision
        elif kind == "lead" and lead_published_at is not None:
            published_at, precision = lead_published_at, "second"
        else:
            published_at, precision = None, None
        briefs.append(
            Brief(
                id=item.id,
                kind=kind,
                source=source,
                section=section,
                city=city,
                agencies=item.agencies,
                headline=headline,
                text=item.text,
                language=language,
                published_at=published_at,
                published_at_precision=precision,
                age_text=age.text if age else None,
                fetched_at=fetched_at,
                event_time=published_at or fetched_at,
                url=url,
                position=position - 1,
            )
        )
    if not briefs and not left_out:
        if rejected:
            first = rejected[0]
            raise ParseError(first.reason, first.message)
        raise ParseError("no_briefs", "no dateline such as 'CITY (AGENCY) - ' found on the page")
    return ParsedPage(briefs=briefs, section=section, language=language, rejected=rejected, left_out=left_out)


class _Item(NamedTuple):
    """One item of a page, read."""

    city: str | None  # None: it does not open with a dateline
    agencies: tuple[str, ...]
    text: str  # tidy text after the dateline; empty when there is none
    id: str  # empty without text
    printed: str  # the item as the page prints it, for rejections


@_cached_unless_long
def _item(fragment: str, kind: str) -> _Item:
    """A list brief or lead as read from its text (cached like :func:`_chunk_items`)."""
    city, agencies, body = _split_dateline(fragment)
    if city is None or not body:
        return _Item(city, tuple(agencies), "", "", fragment.strip())
    body = _collapse(body) if kind == "brief" else _tidy_paragraphs(body)
    return _Item(city, tuple(agencies), body, brief_id(city, agencies, body), fragment.strip())


def clear_caches() -> None:
    """Forget the cached items and ages, as a fresh process would (benchmarks measure cold starts)."""
    for cached in (_item, _chunk_items, _dateline_ahead, _age_from_groups):
        cached.cache_clear()


def _tidy_paragraphs(body: str) -> str:
    paragraphs = (_collapse(p) for p in body.split("\n"))
    return "\n".join(p for p in paragraphs if p)
