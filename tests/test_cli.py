"""The ``wirewatch`` command as a user runs it: a subprocess, stdout and stderr apart."""

from __future__ import annotations

import json
import subprocess
import sys

from wirewatch.models import Brief


def wirewatch(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wirewatch", *args], input=stdin, capture_output=True, env=env, timeout=60
    )


def test_parse_prints_one_brief_per_line(seed_page, tmp_path):
    page = tmp_path / "page.txt"
    page.write_text(seed_page, encoding="utf-8")
    result = wirewatch("parse", str(page), "--fetched-at", "2026-01-21T14:40:00+01:00", "--source", "nos")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    briefs = [Brief.model_validate_json(line) for line in result.stdout.splitlines()]
    assert [b.city for b in briefs] == ["WASHINGTON", "STRAATSBURG", "DAVOS", "DAVOS", "DAVOS", "BRUSSEL", "TOKIO", "MOSKOU"]
    assert {b.source for b in briefs} == {"nos"}
    assert briefs[1].published_at.isoformat() == "2026-01-21T14:24:00+01:00"


def test_parse_reads_stdin(seed_page):
    result = wirewatch("parse", "-", "--fetched-at", "2026-01-21T14:40:00Z", stdin=seed_page.encode())
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 8


def test_unparsable_page_exits_1_with_one_line_reason():
    result = wirewatch("parse", "-", stdin=b"nothing that looks like a wire page")
    assert result.returncode == 1
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "no_briefs" in lines[0]
    assert "Traceback" not in result.stderr.decode()


def test_missing_file_exits_2(tmp_path):
    result = wirewatch("parse", str(tmp_path / "absent.txt"))
    assert result.returncode == 2
    assert b"cannot read" in result.stderr and b"Traceback" not in result.stderr


def test_non_utf8_page_exits_1():
    result = wirewatch("parse", "-", stdin=b"\xff\xfe\xfd")
    assert result.returncode == 1 and b"not UTF-8" in result.stderr


def test_naive_fetch_time_is_a_usage_error(seed_page):
    result = wirewatch("parse", "-", "--fetched-at", "2026-01-21T14:40:00", stdin=seed_page.encode())
    assert result.returncode == 2 and b"UTC offset" in result.stderr


def test_rejected_items_are_reported_on_stderr():
    page = b"Meer uit Buitenland\nPARIJS (ANP) -\n4 minuten geledenROME (ANP) - Twee.\n5 minuten geleden"
    result = wirewatch("parse", "-", stdin=page)
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 1
    assert b"empty_text" in result.stderr


def test_schemas_check_passes_on_the_committed_files():
    result = wirewatch("schemas", "--check")
    assert result.returncode == 0, result.stderr


def test_schemas_check_fails_on_a_stale_folder(tmp_path):
    (tmp_path / "wire.briefs.schema.json").write_text("{}")
    result = wirewatch("schemas", "--check", "--out", str(tmp_path))
    assert result.returncode == 1 and b"out of date" in result.stderr


def test_config_reads_the_environment():
    import os

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092", "WIREWATCH_TOPIC_PARTITIONS": "12"}
    result = wirewatch("config", env=env)
    settings = json.loads(result.stdout)
    assert settings["kafka_bootstrap_servers"] == "kafka-1:9092,kafka-2:9092"
    assert settings["topic_partitions"] == 12


def test_produce_without_a_broker_fails_cleanly(tmp_path, seed_page):
    import os

    from kafka_helpers import free_port

    page = tmp_path / "p.txt"
    page.write_text(seed_page)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "WIREWATCH_BROKER_WAIT_TIMEOUT": "2"}
    result = wirewatch("produce", str(page), env=env)
    assert result.returncode == 1
    assert b"no Kafka broker answered" in result.stderr and b"Traceback" not in result.stderr
