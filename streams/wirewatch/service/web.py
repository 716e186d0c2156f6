"""The worker's HTTP endpoints, on Faust's own web server. Read-only but for editors' verdicts.

- ``/metrics``: Prometheus exposition of :class:`~wirewatch.service.metrics.Metrics`.
- ``/health``: liveness; 503 when a source partition has records waiting and
  has made no progress for twice ``WIREWATCH_STALL_SECONDS``, fetching again
  from the committed offset after the first having not helped (a restart
  resumes it).
- ``/ready``: readiness; 503 while the worker rebalances, recovers tables, or
  has not yet joined its group.
- ``/``: the desk page; ``/api/desk``: its data; ``POST /api/feedback``: an
  editor's verdict on an alert, onto ``wire.feedback``.

The server binds ``WIREWATCH_WEB_HOST`` alone (Faust binds every interface
unless told otherwise), answers only to the host names :class:`WebPolicy`
allows, asks for the token on every path but the probes when one is set,
closes clients that send no whole request within the idle timeout, and sends
security headers with every response.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources

import faust
from aiohttp import web
from aiohttp.web_runner import AppRunner
from faust.web import Request, Response, View
from faust.web.drivers.aiohttp import Web
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from ..core.feedback import Verdict
from ..core.watchlists import DEFAULT_DESK, WatchlistFile
from ..upstream.aiohttp_errors import SERVER_NAME, hide_server_version, one_line_error_logger
from .desk import DeskView
from .metrics import Metrics

__all__ = ["WirewatchWeb", "WebPolicy", "add_views", "readiness", "DESK_PAGE"]

#: Paths an orchestrator probes without credentials; they tell nothing of the news.
PROBE_PATHS = frozenset({"/health", "/ready"})


DESK_PAGE = resources.files("wirewatch.service.static").joinpath("desk.html").read_bytes()


def _inline_hashes(page: bytes, element: str) -> str:
    """CSP sources for the page's inline ``element`` blocks, by hash: no other inline code can run."""
    blocks = re.findall(rb"<%s>(.*?)</%s>" % (element.encode(), element.encode()), page, re.DOTALL)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(block).digest()).decode()}'" for block in blocks)


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_inline_hashes(DESK_PAGE, 'script')}; "
    f"style-src {_inline_hashes(DESK_PAGE, 'style')}; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Server": SERVER_NAME,
}


@dataclass(frozen=True)
class WebPolicy:
    """Who may use the web port, and how long a client may take to ask."""

    #: Host header names answered (the port aside); empty: any.
    host_names: frozenset[str] = frozenset()
    token: str | None = None
    idle_timeout: float = 30.0

    def allows_host(self, host: str | None) -> bool:
        if not self.host_names:
            return True
        return _host_name(host or "") in self.host_names

    def authorised(self, authorization: str | None) -> bool:
        if self.token is None:
            return True
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() == "bearer":
            offered = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                offered = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return False
        else:
            return False
        return hmac.compare_digest(offered.encode(), self.token.encode())

    async def guard(self, request: web.Request, handler) -> web.StreamResponse:
        """Refuse a request for another host name or without the token; else handle it."""
        if not self.allows_host(request.headers.get("Host")):
            return web.Response(status=421, text="this server does not answer to that host name\n")
        if request.path not in PROBE_PATHS and not self.authorised(request.headers.get("Authorization")):
            return web.Response(
                status=401,
                text="authentication required\n",
                headers={"WWW-Authenticate": 'Basic realm="wirewatch", charset="UTF-8"'},
            )
        return await handler(request)


def _host_name(host: str) -> str:
    """``host`` of a Host header without its port: ``[::1]:6066`` → ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rpartition(":")[0] if host.count(":") == 1 else host


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


class WirewatchWeb(Web):
    """Faust's aiohttp web server, without its placeholder index at ``/``, under a :class:`WebPolicy`."""

    production_blueprints = ()

    def __init__(self, app: faust.App, *, policy: WebPolicy, **kwargs) -> None:
        super().__init__(app, **kwargs)

        @web.middleware
        async def guard(request: web.Request, handler) -> web.StreamResponse:
            return await policy.guard(request, handler)

        self.web_app.middlewares.append(guard)
        self.web_app.on_response_prepare.append(_add_security_headers)
        hide_server_version()
        # aiohttp keeps a connection that sends nothing, or a request's headers a byte at a time, for an hour.
        self._runner = AppRunner(
            self.web_app,
            access_log=None,
            keepalive_timeout=policy.idle_timeout,
            logger=one_line_error_logger(),
        )


def readiness(app: faust.App) -> list[str]:
    """Why the worker is not ready; empty when it is."""
    reasons = []
    if not app.consumer_generation_id:
        reasons.append("not yet a member of its consumer group")
    if app.rebalancing:
        reasons.append("rebalancing")
    if getattr(app, "in_recovery", False) or not app.tables.recovery.completed.is_set():
        reasons.append("recovering tables")
    return reasons


def add_views(
    app: faust.App,
    metrics: Metrics,
    desk: DeskView,
    stalled: Callable[[], list] = list,
    *,
    watchlists: WatchlistFile | None = None,
    muted=None,
    feedback_topic=None,
) -> None:
    watchlists = watchlists or WatchlistFile(None)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(metrics.exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            stuck = stalled()
            if stuck:
                partitions = [f"{topic}[{partition}]" for topic, partition in stuck]
                return self.json({"status": "stalled", "partitions": partitions}, status=503)
            return self.json({"status": "ok"})

    @app.page("/ready")
    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            reasons = readiness(app)
            if reasons:
                return self.json({"status": "not ready", "reasons": reasons}, status=503)
            return self.json({"status": "ready", "assigned_partitions": len(app.consumer.assignment())})

    @app.page("/")
    class DeskPage(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(DESK_PAGE, content_type="text/html")

    @app.page("/api/desk")
    class DeskData(View):
        async def get(self, request: Request) -> Response:
            current = watchlists.get(time.monotonic())
            name = request.query.get("desk") or None
            if name is not None and name not in current.desks and name != DEFAULT_DESK:
                return self.json({"error": f"no desk {name!r}", "desks": sorted(current.desks)}, status=404)
            topics = muted.topics if muted is not None else frozenset()
            return self.json(desk.snapshot(desk=name, watchlists=current, muted=topics))

    @app.page("/api/feedback")
    class Feedback(View):
        """An editor's verdict on an alert: ``{"alert_id", "topic", "verdict": "useful"|"noise", "desk"}``."""

        async def post(self, request: Request) -> Response:
            # A cross-site form cannot send JSON without a preflight this server never grants,
            # and a page of another origin says so in its Origin header.
            if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                return self.json({"error": "send application/json"}, status=415)
            origin = request.headers.get("Origin")
            if origin is not None and origin.split("//", 1)[-1] != request.headers.get("Host", ""):
                return self.json({"error": "another origin"}, status=403)
            try:
                body = await request.json()
                verdict = Verdict.model_validate({**body, "at": datetime.now(timezone.utc).isoformat()})
            except (ValueError, TypeError, ValidationError) as error:
                return self.json({"error": f"not a verdict: {str(error).splitlines()[0][:200]}"}, status=400)
            if feedback_topic is None:
                return self.json({"error": "feedback is not taken here"}, status=404)
            await feedback_topic.send(key=verdict.topic.encode(), value=verdict.model_dump_json().encode())
            metrics.alert_feedback.labels(verdict.verdict).inc()
            return self.json({"status": "recorded", "verdict": verdict.verdict}, status=202)
