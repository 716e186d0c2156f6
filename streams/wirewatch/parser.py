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

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .errors import ParseError
from .markup import html_to_text, looks_like_html
from .models import Brief, Precision

__all__ = ["ParsedPage", "Rejected", "parse_page", "brief_id", "Age", "parse_age", "MAX_AGE", "clear_caches"]

# A dateline city is printed in capitals: letters (any script), spaces,
# hyphens, dots and apostrophes ('S-HERTOGENBOSCH, SINT-PETERSBURG, TEL AVIV).
_CITY = r"['’]?[^\W\d_](?:[^\W\d_]|[ .'’\-])*?"
_AGENCY = r"[^\W_][\w.&' ]*?"
_DATELINE = re.compile(
    rf"(?P<city>{_CITY})[ \t]*\((?P<agencies>{_AGENCY}(?:[ \t]*/[ \t]*{_AGENCY})*)\)[ \t]*[-–—][ \t]*"
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
_CLOSING_AGE = re.compile(
    rf"(?im)(?:^[ \t]*(?P<age>{_AGE_BODY})[ \t]*(?=$|{_DATELINE_AHEAD})"
    rf"|(?<=[.!?\"”’')\]])[ \t]*(?P<glued>{_AGE_BODY.replace('?P<', '?P<g_')})(?={_DATELINE_AHEAD}))"
)
# Every age holds one of these words; the closing-age pattern is only tried on
# lines that do (trying it at every position cost most of the parse). Matched
# in lower-cased text: a case-insensitive pattern scans several times slower.
_AGE_WORD = re.compile(
    "geleden|ago|" + "|".join(re.escape(word) for word in sorted([*_RELATIVE_DAYS, *_JUST_NOW], key=len, reverse=True))
)
_AGE_WORD_ANY_CASE = re.compile(f"(?i){_AGE_WORD.pattern}")
_SECTION = re.compile(r"(?im)^[ \t]*(?P<marker>meer uit|more from)[ \t]+(?P<section>[^\n]{1,80}?)[ \t]*$")
# C0/C1 controls other than tab and newline carry no meaning in wire text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _collapse(text: str) -> str:
    """Runs of whitespace as one space, none at the ends (``str.split`` and ``\\s`` agree on what whitespace is)."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Age:
    """A relative age as printed on a page."""

    text: str
    delta: timedelta
    precision: Precision
    language: str

    def published_at(self, fetched_at: datetime) -> datetime:
        """``fetched_at`` minus the age, floored to the age's precision."""
        moment = fetched_at - self.delta
        if self.precision == "minute":
            return moment.replace(second=0, microsecond=0)
        if self.precision == "hour":
            return moment.replace(minute=0, second=0, microsecond=0)
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def parse_age(text: str) -> Age | None:
    """Read one relative age such as ``2 uur geleden``; ``None`` when it is not one."""
    match = _AGE_ONLY.fullmatch(text.strip())
    if match is None:
        return None
    return _age_from_groups(match.group(0), match.group("count"), match.group("unit"), match.group("word"))


@functools.lru_cache(maxsize=1024)
def _age_from_groups(text: str, count: str | None, unit: str | None, word: str | None) -> Age:
    text = _collapse(text)
    if word is not None:
        word = _collapse(word.lower())
        if word in _RELATIVE_DAYS:
            days, language = _RELATIVE_DAYS[word]
            return Age(text, timedelta(days=days), "day", language)
        return Age(text, timedelta(0), "minute", _JUST_NOW[word])
    assert count is not None and unit is not None
    number = _NUMBER_WORDS.get(count.lower()) or int(count)
    step, precision, language = _UNITS[unit.lower()]
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


@dataclass
class _Fragment:
    kind: str
    body: str
    headline: str | None = None
    age: Age | None = None


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
        text = html_to_text(text)
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
    return city.isupper() and len(city.strip()) >= 2


def _opens_with_dateline(text: str) -> bool:
    return _split_dateline(text)[0] is not None


def _closing_ages(text: str) -> Iterator[re.Match[str]]:
    """What ``_CLOSING_AGE.finditer(text)`` yields, trying the pattern only from lines that hold an age word.

    A closing age never spans a newline, so no match starts before the line
    of its age word: searching from that line's start finds every match.
    """
    lowered = text.lower()
    # Lower-casing can change a string's length ("İ"); positions must stay true.
    words = _AGE_WORD.finditer(lowered) if len(lowered) == len(text) else _AGE_WORD_ANY_CASE.finditer(text)
    position = 0
    for word in words:
        if word.start() < position:
            continue
        match = _CLOSING_AGE.search(text, max(position, text.rfind("\n", 0, word.start()) + 1))
        if match is None:
            return
        yield match
        position = match.end()


def _detect_page_language(text: str, section_marker: str | None) -> str | None:
    if section_marker is not None:
        return "nl" if section_marker.lower() == "meer uit" else "en"
    for match in _closing_ages(text):
        return _age_from_match(match).language
    return None


def _age_from_match(match: re.Match[str]) -> Age:
    if match.group("age") is not None:
        return _age_from_groups(match.group("age"), match.group("count"), match.group("unit"), match.group("word"))
    return _age_from_groups(
        match.group("glued"), match.group("g_count"), match.group("g_unit"), match.group("g_word")
    )


def _lead_fragment(region: str) -> _Fragment | None:
    lines = [line for line in region.split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return None
    if _opens_with_dateline(lines[0]):
        return _Fragment("lead", "\n".join(lines))
    if len(lines) > 1 and _opens_with_dateline(lines[1]):
        return _Fragment("lead", "\n".join(lines[1:]), headline=lines[0].strip())
    return None


def _list_fragments(region: str) -> list[_Fragment]:
    fragments: list[_Fragment] = []
    start = 0
    for match in _closing_ages(region):
        fragments.extend(_briefs_in(region[start : match.start()], _age_from_match(match)))
        start = match.end()
    fragments.extend(_briefs_in(region[start:], None))
    return fragments


def _briefs_in(chunk: str, age: Age | None) -> list[_Fragment]:
    """Briefs between two closing ages; only the last one is closed by ``age``."""
    fragments = [_Fragment("brief", body) for body in _item_bodies(chunk)]
    if fragments:
        fragments[-1].age = age
    return fragments


@functools.lru_cache(maxsize=8192)
def _item_bodies(chunk: str) -> tuple[str, ...]:
    """The items in the text between two closing ages (cached like :func:`_item`).

    Several line-opening datelines in one chunk are briefs whose ages are
    missing from the page.
    """
    if not chunk.strip():
        return ()
    starts = [0]
    offset = 0
    for line in chunk.split("\n"):
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

    Raises :class:`ParseError` when the page holds no brief at all.
    """
    if fetched_at.tzinfo is None or fetched_at.utcoffset() is None:
        raise ValueError("fetched_at must be timezone-aware")
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
        if _lead_fragment(text) is None or _opens_with_dateline(text):
            if next(_closing_ages(text), None) is not None:
                lead_region, list_region = "", text

    fragments: list[_Fragment] = []
    lead = _lead_fragment(lead_region)
    if lead is not None:
        fragments.append(lead)
    fragments.extend(_list_fragments(list_region))
    language = _detect_page_language(text, marker_word)

    briefs: list[Brief] = []
    rejected: list[Rejected] = []
    if len(fragments) > max_briefs:
        extra = len(fragments) - max_briefs
        rejected.append(
            Rejected("too_many_briefs", f"the page has {len(fragments)} items; only the first {max_briefs} are read",
                     "", extra)
        )
        fragments = fragments[:max_briefs]
    for fragment in fragments:
        city, agencies, body, identity = _item(fragment.body, fragment.kind)
        if city is None:
            rejected.append(Rejected("no_dateline", "a list item does not open with a dateline", fragment.body.strip()))
            continue
        if not body:
            rejected.append(Rejected("empty_text", f"the {city} dateline has no text after it", fragment.body.strip()))
            continue
        if fragment.age is not None and fragment.age.delta <= MAX_AGE:
            published_at = fragment.age.published_at(fetched_at)
            precision: Precision | None = fragment.age.precision
        elif fragment.kind == "lead" and lead_published_at is not None:
            published_at, precision = lead_published_at, "second"
        else:
            published_at, precision = None, None
        briefs.append(
            Brief(
                id=identity,
                kind="lead" if fragment.kind == "lead" else "brief",
                source=source,
                section=section,
                city=city,
                agencies=list(agencies),
                headline=fragment.headline,
                text=body,
                language=language,
                published_at=published_at,
                published_at_precision=precision,
                age_text=fragment.age.text if fragment.age else None,
                fetched_at=fetched_at,
                event_time=published_at or fetched_at,
                url=url,
                position=len(briefs),
            )
        )
    if not briefs:
        if rejected:
            first = rejected[0]
            raise ParseError(first.reason, first.message)
        raise ParseError("no_briefs", "no dateline such as 'CITY (AGENCY) - ' found on the page")
    return ParsedPage(briefs=briefs, section=section, language=language, rejected=rejected)


@functools.lru_cache(maxsize=8192)
def _item(fragment: str, kind: str) -> tuple[str | None, tuple[str, ...], str, str]:
    """City (None without a dateline), agencies, tidy text and brief id of one item (text and id empty without text).

    Cached: every snapshot of a page repeats most of its items word for word.
    """
    city, agencies, body = _split_dateline(fragment)
    if city is None or not body:
        return city, tuple(agencies), "", ""
    body = _collapse(body) if kind == "brief" else _tidy_paragraphs(body)
    return city, tuple(agencies), body, brief_id(city, agencies, body)


def clear_caches() -> None:
    """Forget the cached items and ages, as a fresh process would (benchmarks measure cold starts)."""
    for cached in (_item, _item_bodies, _age_from_groups):
        cached.cache_clear()


def _tidy_paragraphs(body: str) -> str:
    paragraphs = (_collapse(p) for p in body.split("\n"))
    return "\n".join(p for p in paragraphs if p)
