#!/usr/bin/env bash
# Scores clustering and alerting on the default simulated scenario (24 hours,
# 16 background topics, 8 injected spikes, seed 1) and prints the report as JSON.
# The README quotes its figures; pass --seed N to try other scenarios.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
wirewatch="${WIREWATCH_VENV:-$repo/.venv}/bin/wirewatch"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$wirewatch" simulate --out "$work" --start 2026-03-02T00:00:00+00:00 "$@" >/dev/null
"$wirewatch" cluster "$work/briefs.jsonl" >"$work/results.jsonl"
"$wirewatch" evaluate "$work/truth.jsonl" "$work/results.jsonl"
