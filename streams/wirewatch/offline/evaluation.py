"""Score stories and alerts against ground truth: a simulation's, or real labelled data.

- Alerts: an alert (counted once per id) is a true positive when most of its
  briefs belong to one injected spike; a spike is recalled when some alert
  matches it. Detection delay is the matching alert's ``detected_at`` (the
  event time of the brief that raised it) minus the spike's first brief.
- Stories: pairwise precision, recall and F1 over pairs of briefs put in one
  story, and BCubed precision, recall and F1 (Bagga and Baldwin, 1998),
  against the true story of every brief. A story that another absorbed
  (a ``merge`` line of ``wirewatch cluster``) counts as the one that absorbed
  it, as the desk sees it once the merge is out.
- Labelled count series (``score_spike_windows``): how many labelled anomaly
  windows hold at least one alert's detection time, how many false alert
  episodes there are (alerts outside every window; alerts within an hour of
  the previous such alert are one episode), and each window's delay from its
  start to its first alert.
- The same series scored as the Numenta Anomaly Benchmark scores detectors
  (``nab_scores``): its standard profile, or its profile that rewards a low
  rate of false positives (a false detection costs twice as much): see that
  function.
Pure Python.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations

__all__ = ["resolve_merges", "score_alerts", "score_clusters", "score_spike_windows", "NabScores", "nab_scores",
           "nab_normalised"]

FALSE_EPISODE_GAP = 3600.0


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def score_clusters(truth: dict[str, str], predicted: dict[str, str]) -> dict[str, float]:
    """Clustering quality over the briefs present in both mappings (brief id → story)."""
    briefs = sorted(set(truth) & set(predicted))
    by_true, by_pred = defaultdict(set), defaultdict(set)
    for brief in briefs:
        by_true[truth[brief]].add(brief)
        by_pred[predicted[brief]].add(brief)

    def pairs(groups) -> set[tuple[str, str]]:
        return {pair for members in groups.values() for pair in combinations(sorted(members), 2)}

    true_pairs, pred_pairs = pairs(by_true), pairs(by_pred)
    both = len(true_pairs & pred_pairs)
    pair_precision = both / len(pred_pairs) if pred_pairs else 1.0
    pair_recall = both / len(true_pairs) if true_pairs else 1.0
    bcubed_precision = bcubed_recall = 0.0
    for brief in briefs:
        same_pred, same_true = by_pred[predicted[brief]], by_true[truth[brief]]
        correct = len(same_pred & same_true)
        bcubed_precision += correct / len(same_pred)
        bcubed_recall += correct / len(same_true)
    count = len(briefs) or 1
    bcubed_precision, bcubed_recall = bcubed_precision / count, bcubed_recall / count
    return {
        "briefs": len(briefs),
        "true_stories": len(by_true),
        "predicted_stories": len(by_pred),
        "pairwise_precision": round(pair_precision, 4),
        "pairwise_recall": round(pair_recall, 4),
        "pairwise_f1": round(_f1(pair_precision, pair_recall), 4),
        "bcubed_precision": round(bcubed_precision, 4),
        "bcubed_recall": round(bcubed_recall, 4),
        "bcubed_f1": round(_f1(bcubed_precision, bcubed_recall), 4),
    }


def score_alerts(spikes: list[dict], brief_spike: dict[str, str | None], alerts: list[dict]) -> dict[str, float]:
    """Alert precision, recall and detection delay.

    ``spikes``: dicts with ``id`` and ``start`` (epoch seconds); ``brief_spike``:
    brief id → spike id or None; ``alerts``: dicts with ``id``, ``brief_ids`` and
    ``detected_at`` (epoch seconds), every revision of every alert.
    """
    first_seen: dict[str, dict] = {}
    latest: dict[str, dict] = {}
    for alert in alerts:
        first_seen.setdefault(alert["id"], alert)
        if alert.get("revision", 1) >= latest.get(alert["id"], {}).get("revision", 0):
            latest[alert["id"]] = alert
    matched: dict[str, str | None] = {}
    for alert_id, alert in latest.items():
        votes = Counter(brief_spike.get(brief) for brief in alert["brief_ids"])
        spike, count = votes.most_common(1)[0] if votes else (None, 0)
        matched[alert_id] = spike if spike is not None and count * 2 > len(alert["brief_ids"]) else None
    starts = {spike["id"]: spike["start"] for spike in spikes}
    delays: dict[str, float] = {}
    for alert_id, spike in matched.items():
        if spike is not None:
            delay = first_seen[alert_id]["detected_at"] - starts[spike]
            delays[spike] = min(delay, delays.get(spike, delay))
    true_positives = sum(1 for spike in matched.values() if spike is not None)
    precision = true_positives / len(matched) if matched else 1.0
    recall = len(delays) / len(spikes) if spikes else 1.0
    return {
        "spikes": len(spikes),
        "alerts": len(matched),
        "true_alerts": true_positives,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "median_delay_seconds": round(statistics.median(delays.values()), 1) if delays else None,
        "max_delay_seconds": round(max(delays.values()), 1) if delays else None,
        "missed_spikes": sorted(set(starts) - set(delays)),
    }


def resolve_merges(assignments: dict[str, str], merges: list[tuple[str, str]]) -> dict[str, str]:
    """Brief id → the story it ends in, following ``merges`` (absorbed story, absorbing story) in order."""
    absorbed_by: dict[str, str] = {}
    for gone, into in merges:
        absorbed_by[gone] = into

    def final(story: str) -> str:
        seen = set()
        while story in absorbed_by and story not in seen:
            seen.add(story)
            story = absorbed_by[story]
        return story

    return {brief: final(story) for brief, story in assignments.items()}


def score_spike_windows(windows: list[tuple[float, float]], detections: list[float]) -> dict:
    """Windows detected, false alert episodes and delays for alerts detected at ``detections`` (epoch seconds)."""
    detections = sorted(detections)
    delays = []
    for start, end in windows:
        inside = [moment for moment in detections if start <= moment <= end]
        delays.append(round(inside[0] - start, 1) if inside else None)
    episodes, last_false = 0, None
    for moment in detections:
        if any(start <= moment <= end for start, end in windows):
            continue
        if last_false is None or moment - last_false > FALSE_EPISODE_GAP:
            episodes += 1
        last_false = moment
    detected = [delay for delay in delays if delay is not None]
    return {
        "windows": len(windows),
        "windows_detected": len(detected),
        "false_alert_episodes": episodes,
        "alerts": len(detections),
        "delays_seconds": delays,
        "median_delay_seconds": statistics.median(detected) if detected else None,
    }


#: NAB's standard profile: the weight of a detected window, a missed window and a detection outside every window.
NAB_TRUE_POSITIVE, NAB_FALSE_NEGATIVE, NAB_FALSE_POSITIVE = 1.0, 1.0, 0.11
#: NAB's "reward low FP rate" profile weighs a detection outside every window this much instead.
NAB_LOW_FP_FALSE_POSITIVE = 0.22
#: The first 15% of a series, at most 750 rows, is NAB's probation: nothing in it counts.
NAB_PROBATION_SHARE, NAB_PROBATION_ROWS = 0.15, 750


@dataclass(frozen=True)
class NabScores:
    """One series' NAB scores: the detector's, never detecting's (``null``) and detecting each window at once."""

    raw: float
    null: float
    perfect: float

    @property
    def normalised(self) -> float:
        return nab_normalised([self])


def _scaled_sigmoid(position: float) -> float:
    """NAB's reward curve: 1 well before a window's end, 0 at it, -1 from three widths past it."""
    return -1.0 if position > 3.0 else 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def nab_scores(
    stamps: list[float], windows: list[tuple[float, float]], detections: list[float],
    false_positive_weight: float = NAB_FALSE_POSITIVE,
) -> NabScores:
    """NAB's scores of ``detections`` on a series whose rows are at ``stamps`` (sorted); standard profile by default.

    A detection counts on the last row at or before it. Inside a window only
    its best detection counts, scaled so that one on the window's first row
    earns 1; a missed window costs 1; each detection outside every window
    costs ``false_positive_weight`` (0.11; 0.22 in the low-FP profile) times
    the curve's value past the end of the window before it (in full with no
    window before). Windows ending in the probation, and detections in it,
    do not count.
    """
    rows = len(stamps)
    probation = min(math.floor(NAB_PROBATION_SHARE * rows), NAB_PROBATION_ROWS)
    spans = [(bisect.bisect_left(stamps, start), bisect.bisect_right(stamps, end) - 1) for start, end in windows]
    full_credit = _scaled_sigmoid(-1.0)
    best: dict[int, float | None] = {index: None for index, (_, last) in enumerate(spans) if last >= probation}
    false_cost = 0.0
    for row in sorted({max(bisect.bisect_right(stamps, moment) - 1, 0) for moment in detections}):
        if row < probation:
            continue
        inside = next((index for index, (first, last) in enumerate(spans) if first <= row <= last), None)
        if inside is not None:
            first, last = spans[inside]
            credit = _scaled_sigmoid(-(last - row + 1) / (last - first + 1)) * NAB_TRUE_POSITIVE / full_credit
            if inside in best:
                best[inside] = credit if best[inside] is None else max(best[inside], credit)
            continue
        before = [span for span in spans if span[1] < row]
        if not before:
            false_cost -= false_positive_weight
        else:
            first, last = before[-1]
            false_cost += _scaled_sigmoid(abs(last - row) / float(max(last - first, 1))) * false_positive_weight
    raw = false_cost + sum(-NAB_FALSE_NEGATIVE if credit is None else credit for credit in best.values())
    return NabScores(raw=raw, null=-NAB_FALSE_NEGATIVE * len(best), perfect=float(len(best)))


def nab_normalised(scores: list[NabScores]) -> float:
    """NAB's corpus score of several series: 100 × (raw − null) / (perfect − null) over their sums; 0 never detects."""
    raw, null, perfect = (sum(getattr(score, name) for score in scores) for name in ("raw", "null", "perfect"))
    return 100.0 * (raw - null) / (perfect - null) if perfect > null else 0.0
