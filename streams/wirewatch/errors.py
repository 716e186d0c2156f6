"""The exceptions wirewatch raises; every one derives from :class:`WirewatchError`."""

from __future__ import annotations

__all__ = ["WirewatchError", "RejectedInput", "ParseError", "DecodeError", "ConfigError"]


class WirewatchError(Exception):
    """Root of every error wirewatch raises on purpose."""


class RejectedInput(WirewatchError):
    """Input that wirewatch refuses, with a machine-readable reason.

    ``reason`` is a short snake_case code that dashboards and dead-letter
    consumers can group by; ``str(error)`` is the human explanation.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ParseError(RejectedInput):
    """A page that holds no brief wirewatch can recognise."""


class DecodeError(RejectedInput):
    """A raw Kafka record that is not a valid page or envelope."""


class ConfigError(WirewatchError):
    """Settings that cannot work together."""
