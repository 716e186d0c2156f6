"""The repository carries what it needs: a clone with nothing beside it builds and tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Spelled in parts so that this file does not name the folder it looks for.
OUTSIDE_FOLDER = "/".join(["..", "sha" "red"])


def tracked_files() -> list[Path]:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in listing.decode().split("\0") if name]


def test_no_project_file_outside_bench_reads_the_folder_beside_the_repository():
    # Benchmarks take dataset paths as arguments and may name that folder; nothing else may.
    offenders = []
    for path in tracked_files():
        relative = path.relative_to(REPO)
        if relative.parts[0] == "bench" or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if OUTSIDE_FOLDER in text:
            offenders.append(str(relative))
    assert offenders == []


def test_the_seed_page_fixture_is_in_the_repository(seed_page):
    assert (REPO / "tests" / "data" / "seed-page.txt").is_file()
    assert "Meer uit Buitenland" in seed_page
