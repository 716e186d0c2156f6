#!/usr/bin/env bash
# Runs every benchmark and rewrites bench/RESULTS.md with their figures and the machine they ran on.
#   bench/run.sh            (starts the local broker on 127.0.0.1:9092 unless KAFKA_BOOTSTRAP_SERVERS is set)
#   WIREWATCH_STORY_DATA=DIR bench/run.sh   also scores stories on DIR's labelled *.jsonl streams, and simulates the story stage in shards on them
#   WIREWATCH_SPIKE_DATA=DIR bench/run.sh   also scores spikes on DIR's count series and labels.json
# The Quix Streams peer gets a venv of its own in .cache/bench-peer (it needs older pydantic than wirewatch).
# Takes about an hour, most of it the million-brief memory run; nothing else should load the machine meanwhile.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/bin/setup" >&2
python="${WIREWATCH_VENV:-$repo/.venv}/bin/python"
peer="$repo/.cache/bench-peer"
if [[ ! -x "$peer/bin/python" ]]; then
  echo "bench: installing the Quix Streams peer in $peer" >&2
  python3.11 -m venv "$peer"
  "$peer/bin/pip" install --quiet -r "$repo/bench/peer-requirements.txt"
  "$peer/bin/pip" install --quiet --no-deps -e "$repo"
fi
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
echo "bench: raw → briefs throughput (bare aiokafka, wirewatch ×1 and ×2, Quix Streams)" >&2
"$python" "$repo/bench/throughput_bench.py" | tee "$results/throughput.json"
max_rates="$("$python" -c "import json,sys; t = json.load(open(sys.argv[1])); print(t['wirewatch_briefs_stage']['pages_per_second'], t['wirewatch_1_worker']['pages_per_second'])" "$results/throughput.json")"
echo "bench: latency at 50% and 90% of the maximum rates (briefs stage, whole pipeline): $max_rates pages/s" >&2
# shellcheck disable=SC2086  # two numbers, split on purpose
"$python" "$repo/bench/latency_bench.py" $max_rates | tee "$results/latency.json"
echo "bench: restart → ready by table store" >&2
"$python" "$repo/bench/recovery_bench.py" | tee "$results/recovery.json"
echo "bench: a worker's state over a million briefs" >&2
"$python" "$repo/bench/memory_bench.py" | tee "$results/memory.json"
echo "bench: stories and alerts on the default scenario" >&2
"$repo/bench/evaluate-stories.sh" | "$python" -c "import json,sys; print(json.dumps(json.load(sys.stdin)))" | tee "$results/stories.json"

"$python" "$repo/bench/write_results.py" "$results" "$repo/bench/RESULTS.md"
# Real labelled streams are not part of the repository: name their folder to score stories on them too.
if [[ -n "${WIREWATCH_STORY_DATA:-}" ]]; then
  echo "bench: stories on the real labelled streams in $WIREWATCH_STORY_DATA" >&2
  { printf '\n## Stories on real labelled streams\n\n'
    "$python" "$repo/bench/story_quality.py" --markdown "$WIREWATCH_STORY_DATA"/*.jsonl; } >>"$repo/bench/RESULTS.md"
  echo "bench: the story stage past one partition, simulated on $WIREWATCH_STORY_DATA" >&2
  { printf '
## The story stage past one partition (docs/scaling.md)

'
    "$python" "$repo/bench/scaling_simulation.py" "$WIREWATCH_STORY_DATA"/*.jsonl; } >>"$repo/bench/RESULTS.md"
fi
if [[ -n "${WIREWATCH_SPIKE_DATA:-}" ]]; then
  echo "bench: spikes on the real labelled count series in $WIREWATCH_SPIKE_DATA" >&2
  { printf '\n## Spikes on real labelled count series\n\n'
    "$python" "$repo/bench/spike_quality.py" --markdown "$WIREWATCH_SPIKE_DATA"; } >>"$repo/bench/RESULTS.md"
fi
