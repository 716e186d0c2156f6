"""wire.alerts → Prometheus Alertmanager: the agent ``deliver_alerts``.

At least once: an alert line's offset is committed only after Alertmanager
took it (Faust acks an event when the agent moves past it). While
Alertmanager is down the agent waits and tries again, the wait doubling to
30 s, and the lines behind it wait in Kafka; a worker that crashes meanwhile
leaves them uncommitted for the next. Posting a line twice is harmless:
Alertmanager knows an alert by its labels, and the same labels update it.
"""

from __future__ import annotations

import logging

import faust
import orjson
from faust.types import TableT

from ..core.delivery import alert_labels, alertmanager_alert
from ..service.alertmanager import AlertmanagerClient, AlertRejected
from ..service.metrics import Metrics
from ..settings import Settings
from .topics import Topics

__all__ = ["declare_delivery_stage"]

log = logging.getLogger(__name__)

#: Alert ids remembered per topic: the newest and the escalations just before it, which revisions may still reach.
_IDS_PER_TOPIC = 4


def declare_delivery_stage(app: faust.App, settings: Settings, metrics: Metrics, topics: Topics) -> dict[str, TableT]:
    """The agent ``deliver_alerts`` and its table; returns the table."""
    assert settings.alertmanager_url is not None
    client = AlertmanagerClient(settings.alertmanager_url)
    # Keyed by topic, as wire.alerts is: an entry's changelog partition is that of the alerts it describes.
    delivered = app.Table(
        "delivered-alerts",
        key_type=str,
        partitions=settings.topic_partitions,
        help="Topic → {alert id: [labels, startsAt]} as each alert was first delivered.",
    )

    @app.agent(topics.alerts, name="deliver_alerts")
    async def deliver_alerts(stream: faust.StreamT) -> None:
        """Post every alert line to Alertmanager, in order, each once it is taken."""
        async for event in stream.events():
            try:
                alert = orjson.loads(event.value)
                topic = alert["topic"]
                known = dict(delivered.get(topic) or {})
                labels, starts_at = known.get(alert["id"]) or (alert_labels(alert), alert["detected_at"])
                payload = alertmanager_alert(alert, labels=labels, starts_at=starts_at,
                                             cooldown=settings.alert_cooldown_seconds, desk_url=settings.desk_link())
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                log.error("deliver_alerts: unreadable alert at %s/%s: %r", event.message.partition,
                          event.message.offset, error)
                metrics.alert_deliveries.labels("rejected").inc()
                continue
            metrics.alert_deliveries_pending.inc()
            try:
                await client.post_until_taken(
                    [payload], on_failure=lambda error: metrics.alert_deliveries.labels("failed").inc()
                )
            except AlertRejected as error:
                log.error("deliver_alerts: Alertmanager refused alert %s: %s", alert["id"], error)
                metrics.alert_deliveries.labels("rejected").inc()
                continue
            finally:
                metrics.alert_deliveries_pending.dec()
            metrics.alert_deliveries.labels("delivered").inc()
            if alert["id"] not in known:
                known[alert["id"]] = [labels, starts_at]
                delivered[topic] = dict(list(known.items())[-_IDS_PER_TOPIC:])

    return {"delivered-alerts": delivered}
