"""A single-pass TF-IDF story clusterer: the yardstick wirewatch's clusterer is measured against.

Not product code. Each text becomes a TF-IDF vector over lowercased word
tokens, with document frequencies counted online over the texts seen so far;
it joins the story whose centroid (the sum of its members' vectors) is most
similar by cosine when that reaches the threshold, else opens a new story.
Every story is compared, as the textbook method does.

    python bench/tfidf_reference.py LABELLED.jsonl [--thresholds 0.05,0.1,...]

prints one JSON line per threshold with the BCubed and pairwise scores.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "streams"))

from wirewatch.offline.evaluation import score_clusters  # noqa: E402

TOKEN = re.compile(r"\w\w+", re.UNICODE)


def cluster(texts: list[str], threshold: float) -> list[int]:
    document_frequency: Counter[str] = Counter()
    centroids: list[dict[str, float]] = []
    norms: list[float] = []
    assignments = []
    for seen, text in enumerate(texts, 1):
        counts = Counter(TOKEN.findall(text.lower()))
        document_frequency.update(counts.keys())
        vector = {t: (1 + math.log(c)) * math.log((seen + 1) / (document_frequency[t] + 1) + 1) for t, c in counts.items()}
        norm = math.sqrt(sum(w * w for w in vector.values())) or 1.0
        best, best_similarity = -1, 0.0
        for index, centroid in enumerate(centroids):
            dot = sum(w * centroid.get(t, 0.0) for t, w in vector.items())
            similarity = dot / (norm * norms[index]) if dot else 0.0
            if similarity > best_similarity:
                best, best_similarity = index, similarity
        if best < 0 or best_similarity < threshold:
            centroids.append({})
            norms.append(1.0)
            best = len(centroids) - 1
        centroid = centroids[best]
        for term, weight in vector.items():
            centroid[term] = centroid.get(term, 0.0) + weight / norm
        norms[best] = math.sqrt(sum(w * w for w in centroid.values()))
        assignments.append(best)
    return assignments


def read_labelled(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    return sorted(records, key=lambda r: (r["published_at"], r["id"]))


def score(records: list[dict], threshold: float) -> dict:
    assignments = cluster([r["text"] for r in records], threshold)
    truth = {r["id"]: r["story"] for r in records}
    predicted = {r["id"]: str(a) for r, a in zip(records, assignments)}
    return {"threshold": threshold, **score_clusters(truth, predicted)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labelled")
    parser.add_argument("--thresholds", default="0.05,0.1,0.15,0.2,0.25,0.3")
    args = parser.parse_args()
    records = read_labelled(args.labelled)
    for threshold in (float(t) for t in args.thresholds.split(",")):
        print(json.dumps(score(records, threshold)), flush=True)


if __name__ == "__main__":
    main()
