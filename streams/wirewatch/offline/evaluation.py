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
Pure Python.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from itertools import combinations

__all__ = ["resolve_merges", "score_alerts", "score_clusters", "score_spike_windows"]

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
