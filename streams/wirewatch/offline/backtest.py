"""Replay a count series through the spike detector, as the worker would see it.

Each row ``(timestamp, topic, count)`` stands for ``count`` briefs naming the
topic at that time; the count goes straight into the same topic history,
detector and alert policy as the worker's briefs. A series counted more
coarsely than the window step (say every 30 minutes) is judged at its own
cadence: a window step of one row and a window of at least one row. Pure Python.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from statistics import median
from typing import TextIO

from ..core.engine import EngineState, SpikeTracker
from ..core.spikes import DetectorConfig
from ..models import Alert

__all__ = ["CountRow", "read_counts", "run_backtest", "config_for_cadence"]


@dataclass(frozen=True)
class CountRow:
    timestamp: float
    topic: str
    count: int


def _parse_timestamp(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def read_counts(handle: TextIO, *, default_topic: str) -> list[CountRow]:
    """Rows of a ``timestamp,count`` or ``timestamp,topic,count`` CSV, oldest first.

    Timestamps are ISO 8601 (UTC when they carry no offset) or epoch seconds.
    Raises ValueError naming the first bad line.
    """
    rows = []
    for number, fields in enumerate(csv.reader(handle), 1):
        if not fields or not "".join(fields).strip():
            continue
        if number == 1 and fields[0].strip().lower() in ("timestamp", "time", "ts"):
            continue
        try:
            if len(fields) == 2:
                rows.append(CountRow(_parse_timestamp(fields[0]), default_topic, int(fields[1])))
            elif len(fields) == 3:
                rows.append(CountRow(_parse_timestamp(fields[0]), fields[1].strip(), int(fields[2])))
            else:
                raise ValueError(f"expected 2 or 3 columns, found {len(fields)}")
        except ValueError as error:
            raise ValueError(f"line {number}: {error}") from None
        if rows[-1].count < 0:
            raise ValueError(f"line {number}: a count cannot be negative")
    rows.sort(key=lambda row: (row.timestamp, row.topic))
    return rows


def config_for_cadence(config: DetectorConfig, rows: list[CountRow]) -> DetectorConfig:
    """``config`` with its window step widened to the series' cadence when rows come further apart."""
    gaps = [b.timestamp - a.timestamp for a, b in zip(rows, rows[1:]) if b.timestamp > a.timestamp and a.topic == b.topic]
    cadence = median(gaps) if gaps else 0.0
    if cadence <= config.window_step:
        return config
    steps = max(round(config.window_size / cadence), 1)
    hold = round(config.hold / cadence) * cadence
    return replace(config, window_step=cadence, window_size=steps * cadence, hold=hold)


def run_backtest(
    rows: Iterable[CountRow], config: DetectorConfig, *, on_row: Callable[[], None] | None = None
) -> Iterable[Alert]:
    """Alerts raised or revised while replaying ``rows``."""
    rows = list(rows)
    config = config_for_cadence(config, rows)
    tracker = SpikeTracker(config, EngineState.in_memory(config))
    for row in rows:
        yield from tracker.observe({row.topic: row.count}, row.timestamp, f"series-{row.topic}", None)
        if on_row:
            on_row()
