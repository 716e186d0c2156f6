"""Log output: plain text for people, or JSON lines (``WIREWATCH_LOG_FORMAT=json``) for log pipelines."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

__all__ = ["JsonFormatter", "logging_config", "CREDENTIAL_LOGGERS"]


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


#: Libraries whose debug lines can carry credentials, never logged below INFO:
#: aiokafka's connection logs each SASL PLAIN request, password included.
CREDENTIAL_LOGGERS = ("aiokafka",)


def logging_config(level: str, fmt: str) -> dict:
    """A ``logging.config.dictConfig`` document that sends everything to stderr.

    At ``debug`` the loggers in :data:`CREDENTIAL_LOGGERS` stay at ``info``.
    """
    formatter = (
        {"()": "wirewatch.service.logs.JsonFormatter"}
        if fmt == "json"
        else {"format": "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "default"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {name: {"level": _at_least_info(level)} for name in CREDENTIAL_LOGGERS},
    }


def _at_least_info(level: str) -> str:
    number = logging.getLevelName(level.upper())
    return level.upper() if isinstance(number, int) and number > logging.INFO else "INFO"
