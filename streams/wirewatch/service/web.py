"""The worker's HTTP endpoints, on Faust's own web server. All read-only.

- ``/metrics``: Prometheus exposition of :class:`~wirewatch.service.metrics.Metrics`.
- ``/health``: liveness; 503 when a source partition has records waiting and
  has made no progress for twice ``WIREWATCH_STALL_SECONDS``, fetching again
  from the committed offset after the first having not helped (a restart
  resumes it).
- ``/ready``: readiness; 503 while the worker rebalances, recovers tables, or
  has not yet joined its group.
- ``/``: the desk page; ``/api/desk``: its data.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import faust
from faust.web import Request, Response, View
from faust.web.drivers.aiohttp import Web
from prometheus_client import CONTENT_TYPE_LATEST

from .desk import DeskView
from .metrics import Metrics

__all__ = ["WirewatchWeb", "add_views", "readiness"]


class WirewatchWeb(Web):
    """Faust's aiohttp web server without its placeholder index at ``/``."""

    production_blueprints = ()


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


def add_views(app: faust.App, metrics: Metrics, desk: DeskView, stalled: Callable[[], list] = list) -> None:
    page = resources.files("wirewatch.service.static").joinpath("desk.html").read_bytes()

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
            return self.bytes(page, content_type="text/html")

    @app.page("/api/desk")
    class DeskData(View):
        async def get(self, request: Request) -> Response:
            return self.json(desk.snapshot())
