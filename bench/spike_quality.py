"""Spike detection on real labelled count series, scored as the Numenta Anomaly Benchmark scores detectors.

    python bench/spike_quality.py DATA_DIR [--json | --markdown] [--loso]

DATA_DIR holds ``timestamp,count`` CSVs and a ``labels.json`` mapping each
file name to its anomaly windows ``[[start, end], ...]``. Each series runs
through ``run_backtest`` with the default settings, as ``wirewatch backtest``
does, and through the reference below. Both are scored with NAB's standard
profile (``wirewatch.offline.evaluation.nab_scores``; an alert id counts once,
at its raise), beside the windows found, the false alert episodes (alerts
outside every window within an hour of each other are one) and the seconds
each backtest took.

``--loso`` is how the detector's settings were chosen: for each series, the
grid below is scored on the other series, the best setting is kept, and the
series left out is scored with it. The figures it prints for each series are
measured on data its settings never saw. "Best" is by NAB's profile that
rewards a low false-positive rate (a false detection costs 0.22 instead of
0.11): every false alert pages an editor. ``--choose-on standard`` chooses
by the standard profile instead; both profiles are reported either way.

``--thin FRACTION`` keeps each counted mention with that chance (seeded, the
labels as they are): the same events on a topic a few times quieter, where
counts are noisier against their peaks. Topics differ in volume by orders
of magnitude; a rule that holds only at one volume does not hold.

The reference is what a desk would write first: the mean and standard
deviation of the last day's 30-minute window counts, an alert when a window
is more than 4 standard deviations above the mean, at most one an hour.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import sys
import time
import zlib
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "streams"))

from wirewatch.offline.backtest import CountRow, read_counts, run_backtest  # noqa: E402
from wirewatch.offline.evaluation import (  # noqa: E402
    NAB_LOW_FP_FALSE_POSITIVE,
    NabScores,
    nab_normalised,
    nab_scores,
    score_spike_windows,
)
from wirewatch.settings import Settings  # noqa: E402

#: The settings ``--loso`` chooses among: the ceiling's memory and margin, and whether a modest rise must hold.
GRID = {
    "ceiling_half_life": [2 * 86400.0, 3 * 86400.0, 4 * 86400.0],
    "ceiling_margin": [0.2, 0.25, 0.3],
    "hold": [0.0, 1800.0],
}
#: What ``--choose-on`` names → the key of a series' scores that choice ranks by.
PROFILES = {"low-fp": "nab_low_fp", "standard": "nab"}

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


def wirewatch_raises(rows: list[CountRow], **settings) -> tuple[list[float], float]:
    """When each alert was raised (its first line), and the backtest's seconds."""
    started = time.perf_counter()
    first_seen: dict[str, float] = {}
    for alert in run_backtest(rows, replace(Settings().detector_config(), **settings)):
        first_seen.setdefault(alert.id, alert.detected_at.timestamp())
    return list(first_seen.values()), time.perf_counter() - started


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _series(data: Path) -> dict[str, tuple[list[CountRow], list[tuple[float, float]]]]:
    labels = json.loads((data / "labels.json").read_text())
    series = {}
    for name, spans in sorted(labels.items()):
        with open(data / name) as handle:
            rows = read_counts(handle, default_topic=Path(name).stem)
        series[name] = (rows, [(_seconds(start), _seconds(end)) for start, end in spans])
    return series


def _scored(rows: list[CountRow], windows: list[tuple[float, float]], raises: list[float]) -> dict:
    stamps = sorted({row.timestamp for row in rows})
    nab = nab_scores(stamps, windows, raises)
    low_fp = nab_scores(stamps, windows, raises, NAB_LOW_FP_FALSE_POSITIVE)
    scored = score_spike_windows(windows, raises)
    return {"nab": [nab.raw, nab.null, nab.perfect], "nab_standard": round(nab.normalised, 1),
            "nab_low_fp": [low_fp.raw, low_fp.null, low_fp.perfect], "nab_low_fp_score": round(low_fp.normalised, 1),
            "windows": scored["windows"], "windows_detected": scored["windows_detected"],
            "false_alert_episodes": scored["false_alert_episodes"], "days": round((stamps[-1] - stamps[0]) / 86400, 1)}


def thinned(rows: list[CountRow], fraction: float, seed: int) -> list[CountRow]:
    """``rows`` with each mention kept with chance ``fraction``: a binomial draw per row (normal above 500)."""
    if fraction >= 1.0:
        return rows
    rng = random.Random(seed)
    kept = []
    for row in rows:
        if row.count > 500:
            count = max(round(rng.gauss(row.count * fraction, math.sqrt(row.count * fraction * (1 - fraction)))), 0)
        else:
            count = sum(rng.random() < fraction for _ in range(row.count))
        kept.append(replace(row, count=count))
    return kept


def _run_one(job: tuple[str, Path, dict, float]) -> tuple[str, dict, dict]:
    name, data, settings, fraction = job
    rows, windows = _series(data)[name]
    rows = thinned(rows, fraction, seed=zlib.crc32(name.encode()))
    raises, seconds = wirewatch_raises(rows, **settings)
    return name, settings, {**_scored(rows, windows, raises), "backtest_seconds": round(seconds, 2)}


def run(data: Path, fraction: float = 1.0) -> dict:
    results = {}
    with ProcessPoolExecutor() as pool:
        runs = list(pool.map(_run_one, [(name, data, {}, fraction) for name in _series(data)]))
    for name, _, scored in runs:
        rows, windows = _series(data)[name]
        rows = thinned(rows, fraction, seed=zlib.crc32(name.encode()))
        results[name] = {"rows": len(rows), "wirewatch": scored,
                         "reference": _scored(rows, windows, reference_raises(rows))}
    return results


def leave_one_series_out(data: Path, choose_on: str = "nab_low_fp", fraction: float = 1.0) -> dict:
    names = list(_series(data))
    settings = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    with ProcessPoolExecutor() as pool:
        runs = list(pool.map(_run_one, [(name, data, chosen, fraction) for chosen in settings for name in names]))
    table: dict[str, dict[str, dict]] = {}
    for name, chosen, scored in runs:
        table.setdefault(json.dumps(chosen, sort_keys=True), {})[name] = scored
    held_out = {}
    for name in names:
        best = max(table, key=lambda key: nab_normalised([NabScores(*table[key][other][choose_on]) for other in names
                                                           if other != name]))
        held_out[name] = {"chosen_on_the_others": json.loads(best), **table[best][name]}
    results = held_out.values()
    return {
        "held_out": held_out,
        "chosen_by": choose_on,
        "nab_standard_held_out": round(nab_normalised([NabScores(*result["nab"]) for result in results]), 1),
        "nab_low_fp_held_out": round(nab_normalised([NabScores(*result["nab_low_fp"]) for result in results]), 1),
        "windows_detected": sum(result["windows_detected"] for result in results),
        "windows": sum(result["windows"] for result in results),
        "false_alert_episodes": sum(result["false_alert_episodes"] for result in results),
        "days": round(sum(result["days"] for result in results)),
    }


def markdown(results: dict) -> str:
    lines = [
        "| series | rows | detector | NAB standard | NAB low FP | windows found | false episodes | backtest s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for detector in ("wirewatch", "reference"):
        for name, result in results.items():
            scored = result[detector]
            lines.append(
                f"| {name} | {result['rows']:,} | {detector} | {scored['nab_standard']} | {scored['nab_low_fp_score']} "
                f"| {scored['windows_detected']}/{scored['windows']} | {scored['false_alert_episodes']} "
                f"| {scored.get('backtest_seconds', '')} |"
            )
        whole = [result[detector] for result in results.values()]
        overall = nab_normalised([NabScores(*scored["nab"]) for scored in whole])
        low_fp = nab_normalised([NabScores(*scored["nab_low_fp"]) for scored in whole])
        found, windows = sum(s["windows_detected"] for s in whole), sum(s["windows"] for s in whole)
        episodes, days = sum(s["false_alert_episodes"] for s in whole), sum(s["days"] for s in whole)
        lines.append(f"| **all** | | {detector} | **{overall:.1f}** | **{low_fp:.1f}** | **{found}/{windows}** "
                     f"| **{episodes}** in {days:.0f} days | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--loso", action="store_true", help="choose the settings leave-one-series-out and report each held-out series")
    parser.add_argument("--choose-on", choices=sorted(PROFILES), default="low-fp",
                        help="the NAB profile --loso chooses settings by (default: low-fp)")
    parser.add_argument("--thin", type=float, default=1.0, metavar="FRACTION",
                        help="keep each mention with this chance: the same series, quieter (default: 1, all)")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true")
    shape.add_argument("--markdown", action="store_true")
    arguments = parser.parse_args()
    if not 0.0 < arguments.thin <= 1.0:
        parser.error("--thin takes a fraction above 0 and at most 1")
    if arguments.loso:
        report = leave_one_series_out(arguments.data, PROFILES[arguments.choose_on], arguments.thin)
        print(json.dumps(report, indent=None if arguments.json else 2))
        return
    results = run(arguments.data, arguments.thin)
    print(markdown(results) if arguments.markdown else json.dumps(results, indent=None if arguments.json else 2))


if __name__ == "__main__":
    main()
