"""A client of Prometheus Alertmanager's v2 API: post alerts, and create, list and expire silences.

Posting follows what Prometheus does: the whole alert each time (labels,
annotations, ``startsAt``, ``endsAt``), retried until Alertmanager answers
2xx. A 4xx other than 429 means the alert itself is wrong, and retrying it
would block every alert behind it: :class:`AlertRejected` says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from ..errors import WirewatchError

__all__ = ["AlertmanagerClient", "AlertRejected", "AlertmanagerUnavailable"]

log = logging.getLogger(__name__)


class AlertmanagerUnavailable(WirewatchError):
    """Alertmanager did not answer, or answered 5xx or 429: worth trying again."""


class AlertRejected(WirewatchError):
    """Alertmanager refused the request itself (4xx): trying again cannot help."""


class AlertmanagerClient:
    """Alertmanager at ``url`` (``http://host:9093``).

    A session per request: alerts and silences are a few a minute at most,
    and no connection is left open across an Alertmanager restart.
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as session, session.request(
                method, f"{self.url}/api/v2{path}", json=body
            ) as response:
                text = await response.text()
                if response.status >= 500 or response.status == 429:
                    raise AlertmanagerUnavailable(f"{method} {path}: HTTP {response.status}: {text[:200]}")
                if response.status >= 400:
                    raise AlertRejected(f"{method} {path}: HTTP {response.status}: {text[:200]}")
                return await response.json(content_type=None) if text else None
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise AlertmanagerUnavailable(f"{method} {path}: {type(error).__name__}: {error}") from error

    async def post_alerts(self, alerts: list[dict]) -> None:
        await self._request("POST", "/alerts", alerts)

    async def post_until_taken(
        self,
        alerts: list[dict],
        *,
        first_wait: float = 0.5,
        longest_wait: float = 30.0,
        on_failure: Callable[[Exception], None] = lambda error: None,
    ) -> None:
        """Post ``alerts``, waiting and trying again (the wait doubling up to ``longest_wait``) until Alertmanager takes them.

        Raises :class:`AlertRejected` at once when Alertmanager refuses them.
        """
        wait = first_wait
        while True:
            try:
                await self.post_alerts(alerts)
                return
            except AlertmanagerUnavailable as error:
                on_failure(error)
                log.warning("alertmanager: %s; trying again in %.1f s", error, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, longest_wait)

    async def create_silence(self, matchers: dict[str, str], *, starts_at: str, ends_at: str, created_by: str,
                             comment: str) -> str:
        body = {
            "matchers": [{"name": name, "value": value, "isRegex": False, "isEqual": True}
                         for name, value in matchers.items()],
            "startsAt": starts_at,
            "endsAt": ends_at,
            "createdBy": created_by,
            "comment": comment,
        }
        return (await self._request("POST", "/silences", body))["silenceID"]

    async def silences(self) -> list[dict]:
        return await self._request("GET", "/silences")

    async def expire_silence(self, silence_id: str) -> None:
        await self._request("DELETE", f"/silence/{silence_id}")
