"""Bytes the ``topic-history`` table writes per brief, and its largest row.

    python bench/spike_state.py [--streams DIR] [--per-step N] [--hours H]

Runs the story engine in-process over a feed in which one topic is named by
``N`` briefs every 5 minutes for ``H`` hours (beside the simulated background
feed), and records every write to the topic-history table as the worker's
changelog would carry it (JSON). A worker batches writes (one per key per
batch), so these are the unbatched upper bound. ``--streams`` runs another
checkout's ``streams/`` folder, to measure a version before and after a change.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path


class _MeasuredTable(dict):
    written = 0
    writes = 0
    largest = 0

    def __setitem__(self, key, value) -> None:
        size = len(json.dumps(value, separators=(",", ":")))
        self.written += size
        self.writes += 1
        self.largest = max(self.largest, size)
        super().__setitem__(key, value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=Path, default=Path(__file__).resolve().parent.parent / "streams")
    parser.add_argument("--per-step", type=int, default=20)
    parser.add_argument("--hours", type=float, default=12)
    arguments = parser.parse_args()
    sys.path.insert(0, str(arguments.streams))

    from wirewatch.core.engine import EngineState, create_engine
    from wirewatch.models import ClusterInput
    from wirewatch.offline.simulation import Scenario, simulate
    from wirewatch.settings import Settings

    start = datetime(2026, 3, 2, tzinfo=timezone.utc)
    settings = Settings()
    state = EngineState.in_memory(settings.detector_config())
    table = state.topic_history = _MeasuredTable()
    engine = create_engine(settings, state)
    simulation = simulate(Scenario(hours=arguments.hours, seed=1, snapshot_every=86400), start)
    inputs = [ClusterInput(id=b.id, text=b.text, headline=b.headline, published_at=b.published_at) for b in simulation.briefs]
    for step in range(int(arguments.hours * 12)):
        for index in range(arguments.per_step):
            moment = start + timedelta(minutes=5 * step, seconds=index * 300 / arguments.per_step)
            text = f"Groenland: nieuwe ontwikkelingen rond Groenland, bericht {step}-{index}."
            inputs.append(ClusterInput(id=f"busy-{step}-{index}", text=text, published_at=moment))
    inputs.sort(key=lambda brief: (brief.published_at, brief.id))
    for brief in inputs:
        engine.process(brief)
    print(json.dumps({
        "streams": str(arguments.streams),
        "briefs": len(inputs),
        "busy_topic_briefs_per_5_min": arguments.per_step,
        "topic_history_writes": table.writes,
        "topic_history_bytes_per_brief": round(table.written / len(inputs)),
        "largest_row_bytes": table.largest,
        "busy_topic_row_bytes": len(json.dumps(dict.__getitem__(table, "greenland"), separators=(",", ":"))),
    }))


if __name__ == "__main__":
    main()
