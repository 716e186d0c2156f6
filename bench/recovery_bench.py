"""How long a restarted worker takes to be ready again, by table store.

For each store, one worker (every stage) on topics of its own works through
a simulated feed (a snapshot a minute) until the stories topic holds an
update per brief, and is stopped (SIGTERM). The records on its tables'
changelog topics are counted. Then a new worker starts with the same app id
and data folder and is timed from its start to its first ``/ready`` 200
(member of its group, tables recovered):

- ``memory://``, the default: a restarted worker replays every changelog;
- ``rocksdb://``: the tables live in the data folder and only what the local
  store lacks is read.

Beside them, the same with no feed at all: start-up and the group join
alone, its topics already there as they are for the others. Changelog
topics are compacted, but Kafka compacts only closed segments (a week or
1 GiB by default), so for the first week a changelog holds every write.
Each start is timed three times (the same state, restarted again) and the
median reported with all three. Prints one JSON object; the broker is
KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092).

    python bench/recovery_bench.py [HOURS]      (default 168 hours of feed)
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from benchkit import (
    changelog_records,
    fill,
    simulated_pages,
    topics_removed_after,
    wait_for_output,
    worker_env,
)

from kafka_helpers import WorkerProcess, free_port
from wirewatch.core.pipeline import parse_envelope
from wirewatch.models import Envelope

PARTITIONS = 4
STORES = ("memory://", "rocksdb://")
STARTS = 3


def ready_seconds(env: dict[str, str], log_path: Path, timeout: float = 600.0) -> float:
    """Seconds from starting a worker to its first ``/ready`` 200; the worker is stopped after."""
    port = env["WIREWATCH_WEB_PORT"]
    started = time.monotonic()
    worker = WorkerProcess.start(env, log_path=log_path)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # not listening yet, or 503 while it joins and recovers
            if worker.process.poll() is not None:
                raise RuntimeError(f"the worker exited; see {log_path}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"the worker was not ready after {timeout} s; see {log_path}")
            time.sleep(0.05)
    finally:
        worker.stop()


def median_start(env: dict[str, str], log_name: str) -> dict:
    """Start → ready, STARTS times over, each worker stopped before the next starts."""
    runs = [ready_seconds(env, Path(f"{env['WIREWATCH_DATA_DIR']}-{log_name}-{start}.log")) for start in range(STARTS)]
    return {"ready_seconds": round(statistics.median(runs), 1), "runs_ready_seconds": [round(run, 1) for run in runs]}


def fresh_env(store: str) -> dict[str, str]:
    env = {**worker_env(uuid.uuid4().hex[:8], partitions=PARTITIONS), "WIREWATCH_STORE": store,
           "WIREWATCH_WEB_PORT": str(free_port())}
    Path(env["WIREWATCH_DATA_DIR"]).mkdir(parents=True)
    return env


def restart(store: str, records: list[tuple[bytes, bytes]], briefs: int) -> dict:
    """A fresh worker with ``store`` works through ``records`` and stops; its restarts timed, its changelogs counted."""
    env = fresh_env(store)
    data_dir = Path(env["WIREWATCH_DATA_DIR"])
    try:
        with topics_removed_after():
            worker = WorkerProcess.start(env, log_path=Path(f"{data_dir}-feed.log"))
            try:
                worker.wait_ready(timeout=180)
                if records:
                    asyncio.run(fill(env["WIREWATCH_TOPIC_RAW"], records))
                alive = lambda: worker.process.poll() is None  # noqa: E731
                asyncio.run(wait_for_output(env["WIREWATCH_TOPIC_STORIES"], briefs, alive))
            finally:
                worker.stop()
            tables = asyncio.run(changelog_records(env["WIREWATCH_APP_ID"]))
            starts = median_start(env, "restart")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return {**starts, "changelog_records": sum(tables.values()), "changelog_records_by_table": tables}


def main() -> None:
    hours = float(sys.argv[1]) if len(sys.argv) > 1 else 168
    records = simulated_pages(hours, snapshot_every=60)
    briefs = len({brief.id for _, value in records
                  for brief in parse_envelope(Envelope.model_validate_json(value)).briefs})
    print(json.dumps({
        "benchmark": "recovery",
        "hours": hours,
        "pages": len(records),
        "briefs": briefs,
        "without_state": restart("memory://", [], 0),
        **{store.removesuffix("://"): restart(store, records, briefs) for store in STORES},
    }))


if __name__ == "__main__":
    main()
