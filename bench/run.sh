#!/usr/bin/env bash
# Runs the benchmarks and rewrites bench/RESULTS.md with their figures and the machine they ran on.
#   bench/run.sh            (starts the local broker on 127.0.0.1:9092 unless KAFKA_BOOTSTRAP_SERVERS is set)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/bin/setup" >&2
python="${WIREWATCH_VENV:-$repo/.venv}/bin/python"
started_broker=0
if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  if ! "$repo/deploy/kafka/local-kafka.sh" status; then
    "$repo/deploy/kafka/local-kafka.sh" start
    started_broker=1
  fi
  export KAFKA_BOOTSTRAP_SERVERS="$("$repo/deploy/kafka/local-kafka.sh" bootstrap)"
fi
trap '((started_broker)) && "$repo/deploy/kafka/local-kafka.sh" stop || true' EXIT

results="$(mktemp -d)"
echo "bench: parser" >&2
"$python" "$repo/bench/parser_bench.py" | tee "$results/parser.json"
echo "bench: raw → briefs through Kafka" >&2
"$python" "$repo/bench/pipeline_bench.py" | tee "$results/pipeline.json"
echo "bench: stories and alerts on the default scenario" >&2
"$repo/bench/evaluate-stories.sh" | "$python" -c "import json,sys; print(json.dumps(json.load(sys.stdin)))" | tee "$results/stories.json"

"$python" - "$results" "$repo/bench/RESULTS.md" <<'PY'
import json, os, platform, subprocess, sys
from datetime import datetime, timezone
results, out = sys.argv[1], sys.argv[2]
load = lambda name: json.load(open(os.path.join(results, name)))
parser, pipeline, stories = load("parser.json"), load("pipeline.json"), load("stories.json")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
memory = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) // 1024 // 1024
lines = [
    "# Benchmark results",
    "",
    f"Written by `bench/run.sh` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: {os.cpu_count()} cores "
    f"({cpu}), {memory} GiB, Python {platform.python_version()}, Apache Kafka 4.0.1 single node on 127.0.0.1.",
    "",
    "| benchmark | figure | target |",
    "|---|---|---|",
    f"| parser, one core | {parser['pages_per_second']} pages/s, {parser['briefs_per_second']} briefs/s "
    f"({parser['pages']} pages of {parser['mean_page_bytes']} bytes, {parser['briefs_per_page']} briefs each) | ≥ 5,000 pages/s |",
    f"| raw → briefs, bare aiokafka loop | {pipeline['bare_aiokafka']['pages_per_second']} pages/s | |",
    f"| raw → briefs, wirewatch worker (whole pipeline) | {pipeline['wirewatch']['pages_per_second']} pages/s | |",
    f"| wirewatch ÷ bare | {pipeline['wirewatch_over_bare']} | ≥ 0.8 |",
    f"| alert precision / recall (default scenario) | {stories['alerts']['precision']} / {stories['alerts']['recall']} | ≥ 0.9 / ≥ 0.9 |",
    f"| median detection delay | {stories['alerts']['median_delay_seconds']} s | ≤ 300 s |",
    f"| story BCubed F1 | {stories['stories']['bcubed_f1']} | ≥ 0.9 |",
    "",
    "Raw JSON:",
    "",
    "```json",
    *(json.dumps(item) for item in (parser, pipeline, stories)),
    "```",
]
open(out, "w").write("\n".join(lines) + "\n")
print(f"wrote {out}", file=sys.stderr)
PY
