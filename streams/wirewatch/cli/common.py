"""What every command shares: failing with one line, reading input, writing JSON lines, progress on a terminal."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click
import orjson

__all__ = ["fail", "parse_time", "read_bytes", "read_page", "write_json_line", "Progress", "json_lines"]


def fail(message: str, code: int = 1) -> None:
    click.echo(f"wirewatch: {message}", err=True)
    sys.exit(code)


def parse_time(value: str | None) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a UTC offset, e.g. {value}+00:00")
    return moment


def read_bytes(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}", 2)
    raise AssertionError("unreachable")


def read_page(path: str) -> str:
    raw = read_bytes(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        fail(f"{path} is not UTF-8 ({error.reason} at byte {error.start})")
    raise AssertionError("unreachable")


def write_json_line(document: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(document) + b"\n")


class Progress:
    """A one-line progress counter on stderr, shown only when stderr is a terminal."""

    def __init__(self, label: str, total: int | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.enabled = sys.stderr.isatty()

    def step(self, count: int = 1) -> None:
        self.done += count
        if self.enabled and (self.done % 200 == 0 or self.done == self.total):
            total = f"/{self.total}" if self.total else ""
            sys.stderr.write(f"\r{self.label}: {self.done}{total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            sys.stderr.write("\n")


def json_lines(path: str):
    """(line number, parsed object) of every non-blank line of a JSON-lines file or stdin."""
    try:
        handle = sys.stdin if path == "-" else open(path, encoding="utf-8")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}", 2)
    with handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield number, orjson.loads(line)
                except orjson.JSONDecodeError as error:
                    fail(f"{path}:{number}: not JSON: {error}")
