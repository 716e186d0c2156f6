"""Writes bench/RESULTS.md from the JSON the benchmarks printed (called by bench/run.sh).

    python bench/write_results.py RESULTS_DIR OUT.md
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "unknown")
    memory = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))) // 1024 // 1024
    return (f"{os.cpu_count()} cores ({cpu}), {memory} GiB, Python {platform.python_version()}, "
            "Apache Kafka 4.0.1 single node on 127.0.0.1")


def rate(figures: dict | None) -> str:
    if not figures:
        return "not run (peer venv missing)"
    rounds = figures.get("rounds_pages_per_second")
    spread = f" (median of {', '.join(map(str, rounds))})" if rounds else ""
    briefs_out = figures.get("briefs_out_pages_per_second")
    end, last_brief = (" to the last story update", f"; the last brief out at {briefs_out} pages/s") if briefs_out else ("", "")
    return f"{figures['pages_per_second']} pages/s, {figures['briefs_per_second']} briefs/s{end}{spread}{last_brief}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def latency_rows(layouts: dict[str, dict], warm_up_seconds: float) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, figures in layouts.items():
        at50, at90 = figures["at_50_percent"], figures["at_90_percent"]
        brief50, brief90, alert50 = at50["raw_to_brief"], at90["raw_to_brief"], at50["spike_to_alert"]
        rows += [
            (f"cold start, {name}: the briefs of a fresh worker's first {warm_up_seconds:g} s of feed out "
             "this long after it, at 50% / 90%",
             f"{at50['warm_up_backlog_seconds']} / {at90['warm_up_backlog_seconds']} s", "", ""),
            (f"raw → brief p50 / p99, {name}, at 50% ({at50['rate_pages_per_second']} pages/s)",
             f"{brief50['p50_ms']} / {brief50['p99_ms']} ms", "p99 < 100 ms", verdict(brief50["p99_ms"] < 100)),
            (f"raw → brief p50 / p99, {name}, at 90% ({at90['rate_pages_per_second']} pages/s)",
             f"{brief90['p50_ms']} / {brief90['p99_ms']} ms", "", ""),
        ]
        if "brief_to_story_update" in at50:  # layouts with a story stage
            story50, story90 = at50["brief_to_story_update"], at90["brief_to_story_update"]
            rows.append((f"brief → story update p50 / p99, {name}, at 50% / 90%",
                         f"{story50['p50_ms']} / {story50['p99_ms']} ms; {story90['p50_ms']} / {story90['p99_ms']} ms",
                         "", ""))
        if alert50["count"]:  # layouts with a story stage
            rows.append((f"spike → alert p50 / max, {name}, at 50%",
                         f"{alert50['p50_ms']} / {alert50['max_ms']} ms ({alert50['count']} alerts)", "< 1 s",
                         verdict(alert50["max_ms"] < 1000)))
    return rows


def pipeline_rows(throughput: dict) -> list[tuple[str, str, str, str]]:
    """The story engine alone beside the pipeline around it: rate, CPU and changelog records per brief."""
    engine, one = throughput.get("story_engine_in_process"), throughput.get("wirewatch_1_worker")
    if not engine or not one or "cpu_ms_per_brief" not in one:
        return []
    ratio = throughput["pipeline_over_engine"]
    story_records = sum(count for table, count in one["changelog_records_per_brief_by_table"].items()
                        if table != "brief-first-seen")
    return [
        ("story engine alone, in-process, on the same briefs", f"{engine['briefs_per_second']} briefs/s, "
         f"{engine['cpu_ms_per_brief']} ms CPU per brief", "", ""),
        ("whole pipeline, 1 worker ÷ story engine alone (briefs/s)", str(ratio), "≥ 0.5", verdict(ratio >= 0.5)),
        ("CPU per brief, whole pipeline: 1 worker; briefs + stories workers",
         f"{one['cpu_ms_per_brief']} ms; {(throughput['wirewatch_briefs_and_stories_workers'] or {}).get('cpu_ms_per_brief')} ms",
         "", ""),
        ("changelog records per brief, 1 worker: story stage; with the de-duplication table",
         f"{story_records:.2f}; {one['changelog_records_per_brief']}", "≤ 2", verdict(story_records <= 2)),
    ]


def main() -> None:
    results, out = Path(sys.argv[1]), Path(sys.argv[2])
    load = lambda name: json.loads((results / name).read_text())  # noqa: E731
    parser, throughput, latency = load("parser.json"), load("throughput.json"), load("latency.json")
    memory, stories, recovery = load("memory.json"), load("stories.json"), load("recovery.json")
    layouts = {"raw → briefs stage, one worker": latency["briefs_stage"], "whole pipeline, one worker": latency["one_worker"],
               "whole pipeline, briefs + stories workers": latency["briefs_and_stories_workers"]}
    over_quix = throughput["wirewatch_over_quix"]
    growth = memory.get("rss_growth_100k_to_1m")
    rss = {sample["briefs"]: sample["rss_mib"] for sample in memory["samples"]}
    rows = [
        ("parser, one core", f"{parser['pages_per_second']} pages/s, {parser['briefs_per_second']} briefs/s "
         f"({parser['pages']} pages of {parser['mean_page_bytes']} bytes, {parser['briefs_per_page']} briefs each)",
         "≥ 5,000 pages/s", verdict(parser["pages_per_second"] >= 5000)),
        ("parser, one core, models only for ids not forwarded before (as the worker splits)",
         f"{parser['new_only_pages_per_second']} pages/s", "", ""),
        ("raw → briefs, bare aiokafka loop", rate(throughput["bare_aiokafka"]), "", ""),
        ("raw → briefs, Quix Streams", rate(throughput["quix_streams"]), "", ""),
        ("raw → briefs, wirewatch, the same stage (1 worker, `WIREWATCH_STAGES=briefs`)",
         rate(throughput["wirewatch_briefs_stage"]), "", ""),
        ("whole pipeline (with stories), wirewatch, 1 worker", rate(throughput["wirewatch_1_worker"]), "", ""),
        ("whole pipeline, wirewatch, 2 workers", rate(throughput["wirewatch_2_workers"]), "", ""),
        ("whole pipeline, wirewatch, briefs + stories workers",
         rate(throughput["wirewatch_briefs_and_stories_workers"]), "", ""),
        ("wirewatch ÷ bare (the same stage)", str(throughput["wirewatch_over_bare"]), "≥ 0.8",
         verdict(throughput["wirewatch_over_bare"] >= 0.8)),
        ("wirewatch ÷ Quix Streams (the same stage)", str(over_quix), "≥ 1.0",
         verdict(over_quix is not None and over_quix >= 1.0)),
        ("whole pipeline ÷ bare", str(throughput["pipeline_over_bare"]), "", ""),
        ("2 workers ÷ 1 worker; briefs + stories workers ÷ 1 worker",
         f"{throughput['two_workers_over_one']}; {throughput['split_stages_over_one']}", "", ""),
        *pipeline_rows(throughput),
        *latency_rows(layouts, latency["warm_up_seconds"]),
        ("RSS of a worker's state (both stages, in-process) after 100k / 1M briefs", f"{rss.get(100_000)} / {rss.get(1_000_000)} MiB",
         "within 10%", verdict(growth is not None and abs(growth) <= 0.10)),
        (f"restart → ready, one worker, after {recovery['hours']:g} h of feed ({recovery['briefs']} briefs): "
         f"memory:// (replaying {recovery['memory']['changelog_records']} changelog records) / rocksdb:// "
         "(local state) / a worker without state",
         f"{recovery['memory']['ready_seconds']} / {recovery['rocksdb']['ready_seconds']} / "
         f"{recovery['without_state']['ready_seconds']} s (medians of {len(recovery['memory']['runs_ready_seconds'])} starts)",
         "", ""),
        ("alert precision / recall (default scenario)",
         f"{stories['alerts']['precision']} / {stories['alerts']['recall']}", "≥ 0.9 / ≥ 0.9", ""),
        ("median detection delay", f"{stories['alerts']['median_delay_seconds']} s", "≤ 300 s",
         verdict(stories["alerts"]["median_delay_seconds"] <= 300)),
        ("story BCubed F1", str(stories["stories"]["bcubed_f1"]), "≥ 0.9", ""),
    ]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `bench/write_results.py` (the last step of `bench/run.sh`) on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: {machine()}.",
        "How each figure is measured is in the docstring of its script in `bench/`.",
        "",
        "| benchmark | figure | target | |",
        "|---|---|---|---|",
        *(f"| {name} | {figure} | {target} | {met} |" for name, figure, target, met in rows),
        "",
        (Path(__file__).parent / "optimisations.md").read_text().rstrip(),
        "",
        "## Raw JSON",
        "",
        "```json",
        *(json.dumps(item) for item in (parser, throughput, latency, memory, recovery, stories)),
        "```",
    ]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
