"""Muting topics: silences in Alertmanager, the one place they live (``mute``, ``mutes``, ``unmute``)."""

from __future__ import annotations

import asyncio
import getpass
import re
import sys
from datetime import datetime, timedelta, timezone

import click

from ..core.delivery import ALERT_NAME, news_silences
from ..errors import WirewatchError
from ..settings import Settings
from .common import fail, write_json_line
from .group import main

__all__ = ["mute", "mutes", "unmute", "notifications"]

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
    ends_at = (now + length).isoformat()
    matchers = {"alertname": ALERT_NAME, "topic": topic.lower()}
    if desk:
        matchers["desk"] = desk
    silence_id = _run(_client().create_silence(
        matchers, starts_at=now.isoformat(), ends_at=ends_at,
        created_by=getpass.getuser(), comment=reason))
    _print_mute({"id": silence_id, "topic": topic.lower(), "desk": desk, "ends_at": ends_at, "comment": reason})


@main.command()
def mutes() -> None:
    """The topics muted now, one per line (JSON lines when piped)."""
    for silence in news_silences(_run(_client().silences())):
        _print_mute(silence)


@main.command()
@click.argument("silence_id")
def unmute(silence_id: str) -> None:
    """End the silence SILENCE_ID (from ``mutes``) now."""
    _run(_client().expire_silence(silence_id))


def _print_mute(muted: dict) -> None:
    if sys.stdout.isatty():
        desk = f" for {muted['desk']}" if muted.get("desk") else ""
        click.echo(f"{muted['id']}  {muted['topic']}{desk} muted until {muted['ends_at']}  {muted['comment']}")
    else:
        write_json_line(muted)


@main.command()
@click.option("--listen", default="127.0.0.1:9096", show_default=True, help="host:port to take webhooks on.")
def notifications(listen: str) -> None:
    """Print the notifications an Alertmanager webhook receiver gets: one line per alert (JSON lines when piped).

    Point a receiver's webhook_configs url at http://LISTEN/ to see what a desk
    would be paged with; bin/demo does.
    """
    from aiohttp import web

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        fail(f"--listen {listen!r}: write it as host:port", 2)

    async def take(request: web.Request) -> web.Response:
        try:
            message = await request.json()
            alerts = message["alerts"]
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400, text="not an Alertmanager webhook message\n")
        for alert in alerts:
            labels, notes = alert.get("labels", {}), alert.get("annotations", {})
            _print_notification({"status": alert.get("status"), "receiver": message.get("receiver"),
                                 "desk": labels.get("desk"), "topic": labels.get("topic"),
                                 "severity": labels.get("severity"), "summary": notes.get("summary", ""),
                                 "desk_url": notes.get("desk_url", ""), "starts_at": alert.get("startsAt")})
        return web.Response(text="ok\n")

    application = web.Application()
    application.router.add_post("/{tail:.*}", take)
    click.echo(f"wirewatch: taking Alertmanager webhooks on http://{host}:{port}/", err=True)
    web.run_app(application, host=host, port=int(port), print=None, access_log=None)


def _print_notification(note: dict) -> None:
    if sys.stdout.isatty():
        state = "RESOLVED" if note["status"] == "resolved" else "PAGED"
        click.echo(f"{state:<8} {note['desk']:<10} {note['severity'] or '':<8} {note['summary']}  {note['desk_url']}")
    else:
        write_json_line(note)
    sys.stdout.flush()
