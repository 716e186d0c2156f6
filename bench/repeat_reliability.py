"""Run the reliability scenarios again and again against the real broker, and say how each run ended.

    python bench/repeat_reliability.py [--runs N] [SCENARIO ...]

Scenarios (default: all): crash (kill -9 mid-stream), takeover (two workers,
one killed), broker-restart, rocksdb-restart. Each run is one pytest process
running that scenario's test in ``tests/integration/test_reliability_kafka.py``
with a broker of its own, so runs share nothing. Prints one line per run as it
ends and, at the end, per scenario: passes, failures, wall time, and for each
failure what the test saw, which names the brief ids lost or forwarded again
with their candidate partitions and offsets. Exit status 1 when any run
failed. This is what proves a change to the consumer or the commit path, and
what to run before an upgrade of faust-streaming or aiokafka.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = "tests/integration/test_reliability_kafka.py"
SCENARIOS = {
    "crash": "test_kill_9_mid_stream_loses_nothing_and_alerts_nothing_twice",
    "takeover": "test_two_workers_share_the_work_and_one_takes_over_when_the_other_dies",
    "broker-restart": "test_the_worker_rides_out_a_broker_restart",
    "rocksdb-restart": "test_a_rocksdb_worker_restarts_from_local_state_and_still_expires_windows",
}


def run_once(test: str) -> tuple[bool, float, list[str]]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", f"{TESTS}::{test}", "-q", "-p", "no:cacheprovider", "--tb=short"],
        cwd=REPO, capture_output=True, text=True,
    )
    seen = [line[2:].strip() for line in result.stdout.splitlines() if line.startswith("E ")]
    return result.returncode == 0, time.monotonic() - started, seen[:6]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)}")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="Print the summary as one JSON object.")
    options = parser.parse_args()
    unknown = [name for name in options.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    chosen = options.scenarios or list(SCENARIOS)
    summary = {}
    for scenario in chosen:
        outcomes = []
        for number in range(1, options.runs + 1):
            passed, seconds, seen = run_once(SCENARIOS[scenario])
            outcomes.append({"run": number, "passed": passed, "seconds": round(seconds, 1), "saw": seen})
            print(f"{scenario} run {number}/{options.runs}: {'pass' if passed else 'FAIL'} in {seconds:.0f} s",
                  file=sys.stderr, flush=True)
            for line in seen:
                print(f"    {line}", file=sys.stderr)
        failures = [outcome for outcome in outcomes if not outcome["passed"]]
        summary[scenario] = {
            "runs": len(outcomes),
            "passes": len(outcomes) - len(failures),
            "failures": len(failures),
            "wall_seconds": round(sum(outcome["seconds"] for outcome in outcomes), 1),
            "failed_runs": failures,
        }
    if options.json:
        print(json.dumps(summary, indent=2))
    else:
        for scenario, result in summary.items():
            print(f"{scenario}: {result['passes']}/{result['runs']} passed, {result['failures']} failed, "
                  f"{result['wall_seconds'] / 60:.1f} min")
            for failure in result["failed_runs"]:
                print(f"  run {failure['run']}: " + " | ".join(failure["saw"]))
    return 1 if any(result["failures"] for result in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
