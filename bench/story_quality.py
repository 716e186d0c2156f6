"""Story clustering on real labelled streams: wirewatch's engine beside the TF-IDF reference.

    python bench/story_quality.py LABELLED.jsonl [LABELLED.jsonl ...] [--json | --markdown]

For each file (JSON lines with id, text, published_at and a gold ``story``),
runs the story engine in-process with the default settings, as ``wirewatch
cluster`` does, and the single-pass TF-IDF reference of
``bench/tfidf_reference.py`` at its best threshold, each on the first half of
the stream (by time), on the second half and on the whole. The defaults were
chosen on first halves; the second halves are the check. Prints BCubed
precision, recall and F1 after merges and F1 at arrival (each brief in the
story it was first given, as its alert and the desk page saw it), the number
of stories, plus the engine's rate
(briefs/s after start-up), its start-up time and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "streams"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tfidf_reference import read_labelled  # noqa: E402
from tfidf_reference import score as reference_score

REFERENCE_THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)


def run_engine(records: list[dict]) -> dict:
    from wirewatch.core.engine import create_engine
    from wirewatch.models import ClusterInput
    from wirewatch.offline.evaluation import resolve_merges, score_clusters
    from wirewatch.settings import Settings

    started = time.perf_counter()
    engine = create_engine(Settings())
    ready = time.perf_counter() - started
    inputs = {}
    for record in records:
        inputs.setdefault(record["id"], ClusterInput.model_validate(record))
    ordered = sorted(inputs.values(), key=lambda b: (b.published_at, b.id))
    assignments, merges = {}, []
    started = time.perf_counter()
    for brief in ordered:
        story = engine.process(brief).story
        assignments[brief.id] = story.id
        merges += [(gone, story.id) for gone in story.merged_story_ids]
    elapsed = time.perf_counter() - started
    truth = {r["id"]: r["story"] for r in records}
    scores = score_clusters(truth, resolve_merges(assignments, merges))
    at_arrival = score_clusters(truth, assignments)["bcubed_f1"]
    return {**scores, "at_arrival_bcubed_f1": at_arrival, "briefs_per_second": round(len(ordered) / elapsed),
            "start_up_seconds": round(ready, 2)}


def best_reference(records: list[dict]) -> dict:
    return max((reference_score(records, t) for t in REFERENCE_THRESHOLDS), key=lambda s: s["bcubed_f1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--json", action="store_true", help="one JSON object per file and part instead of lines")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table for bench/RESULTS.md")
    args = parser.parse_args()
    rows = []
    if args.markdown:
        print("| stream | part | wirewatch B3-F1 after merges (P / R) | at arrival | stories / gold | briefs/s "
              "| TF-IDF reference B3-F1 (threshold) |")
        print("|---|---|---|---|---|---|---|")
    for path in args.files:
        records = read_labelled(path)
        half = len(records) // 2
        for part, chosen in (("first half", records[:half]), ("second half", records[half:]), ("whole", records)):
            row = {"file": Path(path).name, "part": part, "wirewatch": run_engine(chosen),
                   "reference": best_reference(chosen)}
            rows.append(row)
            ours, ref = row["wirewatch"], row["reference"]
            if args.json:
                print(json.dumps(row), flush=True)
            elif args.markdown:
                print(f"| {row['file']} | {part} | {ours['bcubed_f1']:.3f} ({ours['bcubed_precision']:.3f} / "
                      f"{ours['bcubed_recall']:.3f}) | {ours['at_arrival_bcubed_f1']:.3f} "
                      f"| {ours['predicted_stories']} / {ours['true_stories']} | "
                      f"{ours['briefs_per_second']} | {ref['bcubed_f1']:.3f} ({ref['threshold']}) |", flush=True)
            else:
                print(f"{row['file']:<22} {part:<12} wirewatch B3-F1 {ours['bcubed_f1']:.3f} "
                      f"(P {ours['bcubed_precision']:.3f} R {ours['bcubed_recall']:.3f}, "
                      f"at arrival {ours['at_arrival_bcubed_f1']:.3f}, "
                      f"{ours['predicted_stories']} stories for {ours['true_stories']}, "
                      f"{ours['briefs_per_second']} briefs/s)  reference {ref['bcubed_f1']:.3f} "
                      f"(th {ref['threshold']}, {ref['predicted_stories']} stories)", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    if args.json:
        print(json.dumps({"peak_rss_mib": peak}))
    elif args.markdown:
        print(f"\nPeak RSS of the benchmark process: {peak} MiB.")
    else:
        print(f"peak RSS of this process {peak} MiB")


if __name__ == "__main__":
    main()
