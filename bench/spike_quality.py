"""Spike detection on real labelled count series: wirewatch's backtest beside a rolling z-score.

    python bench/spike_quality.py DATA_DIR [--json | --markdown]

DATA_DIR holds ``timestamp,count`` CSVs and a ``labels.json`` mapping each
file name to its anomaly windows ``[[start, end], ...]``. Each series runs
through ``run_backtest`` with the default settings, as ``wirewatch backtest``
does, and through the reference below; both are scored as ``wirewatch
evaluate`` scores a labels file (a window counts when an alert is raised
inside it; alerts outside every window within an hour of each other are one
false episode; each alert id counts once, at its raise). Both detectors are
causal, so a series is run whole and scored on its first half (by time), on
its second half and whole: the defaults were chosen on first halves, the
second halves are the check. Prints the seconds each backtest took, too, and
for each series the scores of its labelled windows' rises beside those of its
false rises: whether any bar on the score could tell them apart.

The reference is what a desk would write first: the mean and standard
deviation of the last day's 30-minute window counts, an alert when a window
is more than 4 standard deviations above the mean, at most one an hour.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import deque
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "streams"))

from wirewatch.offline.backtest import CountRow, read_counts, run_backtest  # noqa: E402
from wirewatch.offline.evaluation import score_spike_windows  # noqa: E402
from wirewatch.settings import Settings  # noqa: E402

REFERENCE_DEVIATIONS = 4.0


def reference_raises(rows: list[CountRow]) -> list[float]:
    """Moments the rolling z-score reference raises an alert."""
    window, day = 1800.0, 86400.0
    recent: deque[tuple[float, int]] = deque()
    window_counts: deque[tuple[float, int]] = deque()
    raised, last = [], float("-inf")
    in_window = 0
    for row in rows:
        recent.append((row.timestamp, row.count))
        in_window += row.count
        while recent[0][0] <= row.timestamp - window:
            in_window -= recent.popleft()[1]
        past = [count for moment, count in window_counts if moment > row.timestamp - day]
        if len(past) > 12:
            mean = sum(past) / len(past)
            deviation = math.sqrt(sum((count - mean) ** 2 for count in past) / len(past)) or 1.0
            if in_window > mean + REFERENCE_DEVIATIONS * deviation and row.timestamp - last >= 3600:
                raised.append(row.timestamp)
                last = row.timestamp
        window_counts.append((row.timestamp, in_window))
        while window_counts and window_counts[0][0] <= row.timestamp - day:
            window_counts.popleft()
    return raised


def wirewatch_raises(rows: list[CountRow]) -> tuple[list[float], dict[str, tuple[float, float]], float]:
    """When each alert was raised, each rising alert's (raise time, highest score over its revisions), seconds."""
    started = time.perf_counter()
    first_seen: dict[str, float] = {}
    peaks: dict[str, tuple[float, float]] = {}
    for alert in run_backtest(rows, Settings().detector_config()):
        raised = first_seen.setdefault(alert.id, alert.detected_at.timestamp())
        if alert.direction == "rise":
            peaks[alert.id] = (raised, max(alert.score, peaks.get(alert.id, (0.0, 0.0))[1]))
    return list(first_seen.values()), peaks, time.perf_counter() - started


def separability(windows: list[tuple[float, float]], peaks: dict[str, tuple[float, float]]) -> dict:
    """Could a higher bar have kept the false rises out and the labelled windows in?

    The best score of the rises raised inside each labelled window, against
    the scores of the rises raised outside every window: those at or above
    the weakest window's best score cannot be left out by any threshold on
    the score without losing that window too.
    """
    inside = [[score for raised, score in peaks.values() if start <= raised <= end] for start, end in windows]
    best = [round(max(scores), 1) for scores in inside if scores]
    false = sorted(round(score, 1) for raised, score in peaks.values()
                   if not any(start <= raised <= end for start, end in windows))
    weakest = min(best, default=float("inf"))
    return {"window_best_scores": best, "false_rise_scores": false,
            "false_rises_at_or_above_weakest_window": sum(score >= weakest for score in false)}


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def score_halves(rows: list[CountRow], windows: list[tuple[float, float]], raises: list[float]) -> dict:
    first, last = rows[0].timestamp, rows[-1].timestamp
    middle = (first + last) / 2
    report = {}
    for part, low, high in (("first", first, middle), ("second", middle, last + 1), ("whole", first, last + 1)):
        inside = [(start, end) for start, end in windows if low <= start < high]
        scored = score_spike_windows(inside, [moment for moment in raises if low <= moment < high])
        scored["days"] = round((high - low) / 86400, 1)
        report[part] = scored
    return report


def run(data: Path) -> dict:
    labels = json.loads((data / "labels.json").read_text())
    results = {}
    for name, spans in sorted(labels.items()):
        with open(data / name) as handle:
            rows = read_counts(handle, default_topic=Path(name).stem)
        windows = [(_seconds(start), _seconds(end)) for start, end in spans]
        raises, peaks, seconds = wirewatch_raises(rows)
        results[name] = {
            "rows": len(rows),
            "backtest_seconds": round(seconds, 2),
            "separability": separability(windows, peaks),
            "wirewatch": score_halves(rows, windows, raises),
            "reference": score_halves(rows, windows, reference_raises(rows)),
        }
    return results


def markdown(results: dict) -> str:
    lines = [
        "| series | rows | backtest s | detector | windows found (1st / 2nd half) | false episodes (1st / 2nd half) | median delay h (whole) |",
        "|---|---|---|---|---|---|---|",
    ]
    totals = {}
    for name, result in results.items():
        for detector in ("wirewatch", "reference"):
            halves = result[detector]
            first, second, whole = halves["first"], halves["second"], halves["whole"]
            delay = whole["median_delay_seconds"]
            lines.append(
                f"| {name} | {result['rows']:,} | {result['backtest_seconds'] if detector == 'wirewatch' else ''} "
                f"| {detector} | {first['windows_detected']}/{first['windows']} · {second['windows_detected']}/{second['windows']} "
                f"| {first['false_alert_episodes']} · {second['false_alert_episodes']} "
                f"| {'' if delay is None else round(delay / 3600, 1)} |"
            )
            total = totals.setdefault(detector, [0, 0, 0, 0.0])
            total[0] += whole["windows_detected"]
            total[1] += whole["windows"]
            total[2] += whole["false_alert_episodes"]
            total[3] += whole["days"]
    for detector, (found, windows, episodes, days) in totals.items():
        lines.append(
            f"| **all** | | | {detector} | **{found}/{windows}** ({found / windows:.0%}) "
            f"| **{episodes}** in {days:.0f} days (target ≤ {days / 14:.0f}) | |"
        )
    lines += [
        "",
        "| series | best score of the rises in each labelled window | scores of the false rises | false rises at or above the weakest window |",
        "|---|---|---|---|",
    ]
    for name, result in results.items():
        apart = result["separability"]
        lines.append(
            f"| {name} | {', '.join(map(str, apart['window_best_scores']))} "
            f"| {', '.join(map(str, apart['false_rise_scores']))} "
            f"| {apart['false_rises_at_or_above_weakest_window']} of {len(apart['false_rise_scores'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true")
    shape.add_argument("--markdown", action="store_true")
    arguments = parser.parse_args()
    results = run(arguments.data)
    print(markdown(results) if arguments.markdown else json.dumps(results, indent=None if arguments.json else 2))


if __name__ == "__main__":
    main()
