"""One short line per record, for a person watching a terminal. Pure Python.

``wirewatch tail`` (and so ``bin/demo``) prints records this way when its
output is a terminal; piped, it prints JSON lines instead. A line leads with
the record's own time (a brief's event time, an alert's detection time) in the
machine's time zone, then a fixed-width kind, then what a desk needs first:

    23:20  brief  KRUININGEN     Dijk bij Kruiningen houdt stand na nacht vol noodreparaties
    23:20  story  westerschelde · scheldestromen · kr…   4 briefs  +1  Rijkswaterstaat sluit de …
    23:20  ALERT  westerschelde  4 in 30 min, < 0.01 expected  high  (revision 2)
    23:25  dead   wire.raw 1/2  invalid_envelope: the envelope is invalid: fetched_at: …

Wire text is shown as text: control characters are replaced, so a hostile
brief cannot move the cursor or recolour the terminal.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ..core.spikes import expected_text

__all__ = ["RecordKind", "human_line"]

RecordKind = str  # "brief", "story", "alert", "dead_letter" or "other"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_STYLES = {
    "brief": "\x1b[36m",  # cyan
    "story": "\x1b[32m",  # green
    "alert": "\x1b[1;31m",  # bold red
    "dead_letter": "\x1b[33m",  # yellow
    "other": "\x1b[2m",  # dim
}
_DIM, _RESET = "\x1b[2m", "\x1b[0m"


def _clean(text: object, width: int) -> str:
    flat = " ".join(_CONTROL.sub(" ", str(text)).split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def _clock(value: object) -> str:
    try:
        return datetime.fromisoformat(str(value)).astimezone().strftime("%H:%M")
    except ValueError:
        return "--:--"


def _minutes(start: object, end: object) -> str:
    try:
        seconds = (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
    except ValueError:
        return "the window"
    return f"{round(seconds / 3600)} h" if seconds >= 7200 else f"{round(seconds / 60)} min"


def _brief(value: dict) -> tuple[str, str]:
    city = _clean(value.get("city") or value.get("source") or "", 14)
    words = value.get("headline") or value.get("text") or ""
    return _clock(value.get("event_time")), f"{city:<14} {_clean(words, 72)}"


def _story(value: dict) -> tuple[str, str]:
    count = value.get("brief_count", 0)
    change = "opened" if value.get("opened") else "+1"
    merged = value.get("merged_story_ids") or []
    if merged:
        change = f"merged {len(merged)}"
    title = _clean(value.get("title") or value.get("label") or value.get("id", ""), 60)
    tags = _clean(" · ".join(value.get("tags") or []), 30)
    size = f"{count} brief" + ("s" if count != 1 else "")
    return _clock(value.get("last_seen")), f"{title:<60} {size:>9}  {change}  {tags}".rstrip()


def _alert(value: dict) -> tuple[str, str]:
    topic = _clean(value.get("topic", ""), 24)
    span = _minutes(value.get("window_start"), value.get("window_end"))
    count, expected = value.get("count", 0), float(value.get("baseline") or 0.0)
    what = f"{count} in {span}, {expected_text(expected)} expected"
    if value.get("direction") == "drop":
        what = f"fell to {what}"
    revision = value.get("revision", 1)
    again = f"  (revision {revision})" if revision and revision > 1 else ""
    title = value.get("title")
    about = f"  {_clean(title, 60)}" if title and title != value.get("topic") else ""
    return _clock(value.get("detected_at")), f"{topic}  {what}  {value.get('severity', '')}{again}{about}"


def _dead_letter(value: dict) -> tuple[str, str]:
    where = f"{value.get('source_topic', '?')} {value.get('source_partition', '?')}/{value.get('source_offset', '?')}"
    reason = _clean(value.get("reason", ""), 32)
    return _clock(value.get("failed_at")), f"{where}  {reason}: {_clean(value.get('message', ''), 72)}"


_FORMATS = {"brief": _brief, "story": _story, "alert": _alert, "dead_letter": _dead_letter}
_TAGS = {"brief": "brief", "story": "story", "alert": "ALERT", "dead_letter": "dead", "other": "record"}


def human_line(kind: RecordKind, value: Any, *, topic: str = "", colour: bool = False) -> str:
    """The record as one line; ``value`` is the decoded JSON (or text) of a record of ``kind``."""
    formatter = _FORMATS.get(kind)
    if formatter is not None and isinstance(value, dict):
        try:
            clock, body = formatter(value)
        except (TypeError, ValueError, AttributeError):
            clock, body = "--:--", _clean(value, 110)
    else:
        kind = "other"
        clock, body = "--:--", f"{topic}  {_clean(value, 100)}"
    tag = f"{_TAGS[kind]:<6}"
    if colour:
        return f"{_DIM}{clock}{_RESET}  {_STYLES[kind]}{tag}{_RESET} {body}"
    return f"{clock}  {tag} {body}"
