"""raw → briefs through the real broker: wirewatch, a bare aiokafka loop, and Quix Streams, side by side.

Every contender gets raw, briefs and stories topics of its own (4 partitions,
``message.timestamp.type=LogAppendTime``), starts on the empty raw topic and
settles into its consumer group; then the same backlog of simulated pages (a
snapshot a minute, so most items repeat) is written at once and the contender
publishes each brief id once. Its time is the span from the first raw
record's append time to the last brief's (the last story update's where the
story stage runs): start-up and group joins count for no one, and every
contender runs in a process of its own while this one only writes the
backlog and watches.

- bare: bench/bare_loop.py, one aiokafka consume → parse → produce loop with
  wirewatch's parser and an in-memory set for de-duplication: the limit for
  Python on this broker;
- wirewatch, the same stage: one ``wirewatch worker`` with
  ``WIREWATCH_STAGES=briefs`` (split, candidates topic, de-duplication table);
- wirewatch, the whole pipeline (with the story stage): one worker, two
  workers in one group, and the stages in two workers (``briefs`` +
  ``stories``), timed to the last story update (one per brief), the
  pipeline's end; ``briefs_out_pages_per_second`` is the same run to its
  last brief;
- quix: the same stage in Quix Streams (bench/quix_peer.py), run only when the
  peer's venv exists (WIREWATCH_BENCH_PEER_PYTHON, default .cache/bench-peer).

Beside the rates: each contender's CPU milliseconds per brief (every process
it runs, from /proc, between the backlog's start and its last output), and
for wirewatch the records its tables wrote to their changelogs per brief, by
table. The story engine also runs alone in this process on the same briefs
(each once, in the order a worker first meets them), and
``pipeline_over_engine`` is one worker's briefs/s over the engine's.

The backlog is written faster than any contender reads it (``fill`` in the
output says how fast), so the figures are the contenders' own. Figures vary
from run to run by a fifth on this machine, so every contender runs ROUNDS
times, round after round, and the run with the median throughput is
reported with all rounds' pages/s. Prints one JSON object. The broker is
KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092).

    python bench/throughput_bench.py [HOURS] [ROUNDS] [CONTENDER,...]
        (default 168 hours, about 10,000 pages; 3 rounds; every contender)

Naming contenders (``bare_aiokafka,wirewatch_briefs_stage``) runs only those,
for a quick before/after of one change; ratios whose contenders did not run
are null.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchkit import (
    BOOTSTRAP,
    LOG_APPEND_TIME,
    REPO,
    append_time_span,
    changelog_records,
    create_topics,
    fill,
    runs_stories,
    simulated_pages,
    topics_removed_after,
    wait_for_output,
    wait_until_group_stable,
    worker_env,
    workers,
)

from wirewatch.core.pipeline import parse_envelope
from wirewatch.models import Envelope

PARTITIONS = 4
SETTLE_SECONDS = 8.0
PEER_PYTHON = Path(os.environ.get("WIREWATCH_BENCH_PEER_PYTHON", REPO / ".cache/bench-peer/bin/python"))
#: Contender → its processes' stages (WIREWATCH_STAGES); one worker per entry.
WIREWATCH_LAYOUTS = {
    "wirewatch_briefs_stage": ["briefs"],
    "wirewatch_1_worker": ["all"],
    "wirewatch_2_workers": ["all", "all"],
    "wirewatch_briefs_and_stories_workers": ["briefs", "stories"],
}

#: Contenders timed until their last story update.
STORY_CONTENDERS = {name for name, stages in WIREWATCH_LAYOUTS.items() if runs_stories(stages)}


@dataclass(frozen=True)
class Running:
    """A contender running and settled: its processes, and the app id its tables' changelogs are named by."""

    processes: list[subprocess.Popen]
    app_id: str | None = None

    def alive(self) -> bool:
        return all(process.poll() is None for process in self.processes)

    def cpu_seconds(self) -> float:
        """User and system CPU time of every process so far (Linux: /proc/PID/stat, in clock ticks)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for process in self.processes:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
        return total / ticks


#: A contender: given its raw, briefs and stories topics, a context in which it runs and is settled.
Contender = Callable[[str, str, str], AbstractContextManager[Running]]


async def fill_timed(raw: str, records: list[tuple[bytes, bytes]]) -> float:
    started = time.perf_counter()
    await fill(raw, records)
    return time.perf_counter() - started


def measure(contender: Contender, records: list[tuple[bytes, bytes]], expected: int, *, stories: bool) -> dict:
    """Pages/s from the first raw record to the last brief, or, where ``stories`` runs, to the last story update.

    The story stage publishes one update per brief and may finish well after
    the briefs: a pipeline is as fast as its end.
    """
    run = uuid.uuid4().hex[:8]
    raw, briefs, story_topic = f"bench-{run}.raw", f"bench-{run}.briefs", f"bench-{run}.stories"
    with topics_removed_after():
        asyncio.run(create_topics([raw, briefs, story_topic], PARTITIONS, LOG_APPEND_TIME))
        with contender(raw, briefs, story_topic) as running:
            cpu_before = running.cpu_seconds()
            fill_seconds = asyncio.run(fill_timed(raw, records))
            asyncio.run(wait_for_output(briefs, expected, running.alive))
            if stories:
                asyncio.run(wait_for_output(story_topic, expected, running.alive))
            cpu_seconds = running.cpu_seconds() - cpu_before
        changelogs = asyncio.run(changelog_records(running.app_id)) if running.app_id else {}
        brief_seconds = asyncio.run(append_time_span(raw, briefs))
        seconds = asyncio.run(append_time_span(raw, story_topic)) if stories else brief_seconds
    figures = {"seconds": round(seconds, 2), "pages_per_second": round(len(records) / seconds),
               "briefs_per_second": round(expected / seconds),
               "fill_pages_per_second": round(len(records) / fill_seconds),
               "cpu_ms_per_brief": round(1000 * cpu_seconds / expected, 2)}
    if running.app_id:
        figures["changelog_records_per_brief"] = round(sum(changelogs.values()) / expected, 2)
        figures["changelog_records_per_brief_by_table"] = {name: round(count / expected, 2)
                                                           for name, count in changelogs.items()}
    if stories:
        figures["briefs_out_pages_per_second"] = round(len(records) / brief_seconds)
    return figures


@contextmanager
def subprocess_contender(command: list[str], group: str, log_path: str) -> Iterator[Running]:
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            asyncio.run(wait_until_group_stable(group))
            yield Running([process])
        finally:
            process.terminate()
            process.wait(30)


@contextmanager
def bare(raw: str, briefs: str, _stories: str) -> Iterator[Running]:
    group = f"{raw}-bare"
    with subprocess_contender([sys.executable, str(REPO / "bench/bare_loop.py"), BOOTSTRAP, raw, briefs, group],
                              group, f"/tmp/{raw}-bare.log") as running:
        yield running


@contextmanager
def quix(raw: str, briefs: str, _stories: str) -> Iterator[Running]:
    group, state_dir = f"{raw}-quix", f"/tmp/{raw}-quix"
    try:
        with subprocess_contender([str(PEER_PYTHON), str(REPO / "bench/quix_peer.py"), BOOTSTRAP, raw, briefs,
                                   group, state_dir], group, f"/tmp/{raw}-quix.log") as running:
            yield running
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def wirewatch(stages: list[str]) -> Contender:
    @contextmanager
    def layout(raw: str, briefs: str, stories: str) -> Iterator[Running]:
        env = {**worker_env(uuid.uuid4().hex[:8], partitions=PARTITIONS),
               "WIREWATCH_TOPIC_RAW": raw, "WIREWATCH_TOPIC_BRIEFS": briefs, "WIREWATCH_TOPIC_STORIES": stories}
        with workers(env, stages, settle_seconds=SETTLE_SECONDS, first_port=6100) as processes:
            yield Running([worker.process for worker in processes], app_id=env["WIREWATCH_APP_ID"])

    return layout


def engine_in_process(records: list[tuple[bytes, bytes]], rounds: int) -> dict:
    """The story engine alone on the briefs the pages carry, each once, in the order a worker first sees them."""
    from wirewatch.core.engine import create_engine
    from wirewatch.models import ClusterInput
    from wirewatch.settings import Settings

    briefs: dict[str, ClusterInput] = {}
    for _, value in records:
        for brief in parse_envelope(Envelope.model_validate_json(value)).briefs:
            briefs.setdefault(brief.id, ClusterInput.from_brief(brief))
    runs = []
    for _ in range(rounds):
        engine = create_engine(Settings())
        started = time.process_time()
        for brief in briefs.values():
            engine.process(brief)
        seconds = time.process_time() - started
        runs.append({"briefs_per_second": round(len(briefs) / seconds), "cpu_ms_per_brief": round(1000 * seconds / len(briefs), 2)})
    ordered = sorted(runs, key=lambda run: run["briefs_per_second"])
    return {**ordered[len(ordered) // 2], "rounds_briefs_per_second": [run["briefs_per_second"] for run in runs]}


def ratio(numerator: dict | None, denominator: dict | None, figure: str = "pages_per_second") -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator[figure] / denominator[figure], 3)


def median_run(runs: list[dict]) -> dict:
    """The run with the median throughput, with every run's pages/s beside it."""
    ordered = sorted(runs, key=lambda run: run["pages_per_second"])
    return {**ordered[len(ordered) // 2], "rounds_pages_per_second": [run["pages_per_second"] for run in runs]}


def main() -> None:
    hours = float(sys.argv[1]) if len(sys.argv) > 1 else 168
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    records = simulated_pages(hours, snapshot_every=60)
    expected = len({brief.id for _, value in records
                    for brief in parse_envelope(Envelope.model_validate_json(value)).briefs})
    contenders: dict[str, Contender] = {"bare_aiokafka": bare,
                                        **{name: wirewatch(stages) for name, stages in WIREWATCH_LAYOUTS.items()}}
    if PEER_PYTHON.exists():
        contenders["quix_streams"] = quix
    if len(sys.argv) > 3:
        chosen = sys.argv[3].split(",")
        unknown = set(chosen) - set(contenders)
        if unknown:
            sys.exit(f"unknown or unavailable contenders: {', '.join(sorted(unknown))}; known: {', '.join(contenders)}")
        contenders = {name: contenders[name] for name in chosen}
    # Round after round, every contender once: a slow spell of the machine hits all of them alike.
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, contender in contenders.items():
            runs[name].append(measure(contender, records, expected, stories=name in STORY_CONTENDERS))
    figures = {name: median_run(results) for name, results in runs.items()}
    engine = engine_in_process(records, rounds)
    for name in ["bare_aiokafka", "quix_streams", *WIREWATCH_LAYOUTS]:
        figures.setdefault(name, None)
    print(json.dumps({
        "benchmark": "raw_to_briefs",
        "pages": len(records),
        "briefs": expected,
        "partitions": PARTITIONS,
        "rounds": rounds,
        **figures,
        "wirewatch_over_bare": ratio(figures["wirewatch_briefs_stage"], figures["bare_aiokafka"]),
        "wirewatch_over_quix": ratio(figures["wirewatch_briefs_stage"], figures["quix_streams"]),
        "pipeline_over_bare": ratio(figures["wirewatch_1_worker"], figures["bare_aiokafka"]),
        "two_workers_over_one": ratio(figures["wirewatch_2_workers"], figures["wirewatch_1_worker"]),
        "split_stages_over_one": ratio(figures["wirewatch_briefs_and_stories_workers"], figures["wirewatch_1_worker"]),
        "story_engine_in_process": engine,
        "pipeline_over_engine": ratio(figures["wirewatch_1_worker"], engine, "briefs_per_second"),
    }))


if __name__ == "__main__":
    main()
