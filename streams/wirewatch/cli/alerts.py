"""Muting topics: silences in Alertmanager, the one place they live (``mute``, ``mutes``, ``unmute``)."""

from __future__ import annotations

import asyncio
import getpass
import re
import sys
from datetime import datetime, timedelta, timezone

import click

from ..core.delivery import ALERT_NAME
from ..errors import WirewatchError
from ..settings import Settings
from .common import fail, write_json_line
from .group import main

__all__ = ["mute", "mutes", "unmute"]

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")


def _duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise click.BadParameter(f"{text!r}: write it as 2h, 30m, 1d or 1h30m")
    days, hours, minutes = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def _client():
    from ..service.alertmanager import AlertmanagerClient

    url = Settings().alertmanager_url
    if not url:
        fail("set WIREWATCH_ALERTMANAGER_URL to the Alertmanager that holds the silences", 2)
    return AlertmanagerClient(url)


def _run(coroutine):
    try:
        return asyncio.run(coroutine)
    except WirewatchError as error:
        fail(str(error))


@main.command()
@click.argument("topic")
@click.option("--for", "duration", default="2h", show_default=True, help="How long: 2h, 30m, 1d, 1h30m.")
@click.option("--desk", default=None, help="Mute it for this desk only.")
@click.option("--reason", default="muted from wirewatch", show_default=True, help="Why, for the others on the desk.")
def mute(topic: str, duration: str, desk: str | None, reason: str) -> None:
    """Silence TOPIC's alerts in Alertmanager for a while; prints the silence."""
    length = _duration(duration)
    now = datetime.now(timezone.utc)
    matchers = {"alertname": ALERT_NAME, "topic": topic.lower()}
    if desk:
        matchers["desk"] = desk
    silence_id = _run(_client().create_silence(
        matchers, starts_at=now.isoformat(), ends_at=(now + length).isoformat(),
        created_by=getpass.getuser(), comment=reason))
    _print({"id": silence_id, "topic": topic.lower(), "desk": desk, "ends_at": (now + length).isoformat(),
            "comment": reason})


@main.command()
def mutes() -> None:
    """The topics muted now, one per line (JSON lines when piped)."""
    for silence in _run(_client().silences()):
        if silence["status"]["state"] != "active":
            continue
        matchers = {m["name"]: m["value"] for m in silence["matchers"] if m.get("isEqual", True)}
        if matchers.get("alertname") != ALERT_NAME:
            continue
        _print({"id": silence["id"], "topic": matchers.get("topic"), "desk": matchers.get("desk"),
                "ends_at": silence["endsAt"], "comment": silence.get("comment", "")})


@main.command()
@click.argument("silence_id")
def unmute(silence_id: str) -> None:
    """End the silence SILENCE_ID (from ``mutes``) now."""
    _run(_client().expire_silence(silence_id))


def _print(muted: dict) -> None:
    if sys.stdout.isatty():
        desk = f" for {muted['desk']}" if muted.get("desk") else ""
        click.echo(f"{muted['id']}  {muted['topic']}{desk} muted until {muted['ends_at']}  {muted['comment']}")
    else:
        write_json_line(muted)
