"""What editors' noise verdicts do on the simulated feed: fewer repeated false alerts, the real spikes kept.

    python bench/feedback_effect.py [--hours 72] [--seeds 1 2 3]

A simulated wire with one topic that bursts again and again without being
news (a minister's daily round of briefs, 4 to 12 within twenty minutes, every
six hours: what editors call noise) runs through the story engine twice: without feedback, and with an editor who, half an
hour after each new alert, calls it noise when most of its briefs belong to
no injected spike and useful otherwise. Verdicts reach the engine only once
the stream has passed the moment they were given, as they would live. Prints
one JSON line per seed and a summary line: alerts, false alerts, precision
and recall of the injected spikes, before and after.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "streams"))

from wirewatch.core.engine import create_engine  # noqa: E402
from wirewatch.core.feedback import FeedbackLedger, Verdict  # noqa: E402
from wirewatch.models import ClusterInput  # noqa: E402
from wirewatch.offline.evaluation import score_alerts  # noqa: E402
from wirewatch.offline.simulation import Scenario, simulate  # noqa: E402
from wirewatch.settings import Settings  # noqa: E402

VERDICT_DELAY = timedelta(minutes=30)


def recurring_noise(simulation, seed: int) -> list[ClusterInput]:
    """The minister's rounds: bursts of one name, none of them an injected spike."""
    rng = random.Random(seed)
    briefs, start = [], simulation.start + timedelta(hours=3)
    while start < simulation.start + timedelta(hours=simulation.scenario.hours):
        for serial in range(rng.randint(4, 12)):
            moment = start + timedelta(minutes=rng.uniform(0, 20))
            text = f"Minister Karin Vestergaard {rng.choice(ROUND_VERBS)} over {rng.choice(ROUND_SUBJECTS)} ({serial})."
            briefs.append(ClusterInput(id=f"round-{start:%d%H}-{serial}", text=text, published_at=moment, city="DEN HAAG"))
        start += timedelta(hours=6)
    return briefs


ROUND_VERBS = ("spreekt", "debatteert", "antwoordt", "licht toe", "reageert")
ROUND_SUBJECTS = ("de begroting", "de woningmarkt", "de zorgkosten", "het onderwijs", "de pensioenen", "de stikstof")


def run(simulation, noise: list[ClusterInput], *, with_feedback: bool) -> dict:
    spike_of = {brief.id: brief.spike for brief in simulation.briefs}
    engine = create_engine(Settings(_env_file=None))
    ledger = FeedbackLedger()
    engine.spikes.noise_level = ledger.level
    pending: list[tuple[float, int, Verdict]] = []
    alerts, judged = [], 0
    feed = [ClusterInput(id=brief.id, text=brief.text, headline=brief.headline, published_at=brief.published_at,
                         city=brief.city) for brief in simulation.briefs] + noise
    for brief in sorted(feed, key=lambda b: (b.published_at, b.id)):
        moment = brief.published_at.timestamp()
        while pending and pending[0][0] <= moment:
            ledger.record(heapq.heappop(pending)[2])
        result = engine.process(brief)
        for alert in result.alerts:
            alerts.append({"id": alert.id, "revision": alert.revision, "brief_ids": alert.brief_ids,
                           "detected_at": alert.detected_at.timestamp()})
            if with_feedback and alert.revision == 1:
                votes = Counter(spike_of.get(brief_id) for brief_id in alert.brief_ids)
                noise = votes.most_common(1)[0][0] is None if votes else True
                given = alert.detected_at + VERDICT_DELAY
                verdict = Verdict(alert_id=alert.id, topic=alert.topic, verdict="noise" if noise else "useful", at=given)
                judged += 1
                heapq.heappush(pending, (given.timestamp(), judged, verdict))
    spikes = [{"id": spike.id, "start": spike.start.timestamp()} for spike in simulation.spikes]
    scored = score_alerts(spikes, spike_of, alerts)
    return {key: scored[key] for key in ("spikes", "alerts", "true_alerts", "precision", "recall")} | {
        "false_alerts": scored["alerts"] - scored["true_alerts"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=72.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    arguments = parser.parse_args()
    totals = {"before": Counter(), "after": Counter()}
    for seed in arguments.seeds:
        scenario = Scenario(hours=arguments.hours, seed=seed)
        simulation = simulate(scenario, datetime(2026, 3, 2, tzinfo=timezone.utc))
        noise = recurring_noise(simulation, seed)
        before, after = run(simulation, noise, with_feedback=False), run(simulation, noise, with_feedback=True)
        print(json.dumps({"seed": seed, "before": before, "after": after}))
        for name, result in (("before", before), ("after", after)):
            totals[name].update({key: result[key] for key in ("spikes", "alerts", "true_alerts", "false_alerts")})
            totals[name]["found"] += round(result["recall"] * result["spikes"])
    summary = {name: {**total, "precision": round(total["true_alerts"] / max(total["alerts"], 1), 3),
                      "recall": round(total["found"] / max(total["spikes"], 1), 3)} for name, total in totals.items()}
    print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    main()
