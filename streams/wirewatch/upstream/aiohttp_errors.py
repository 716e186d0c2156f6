"""aiohttp's answer to a malformed request: one WARNING line, not an ERROR traceback, and no version.

- Replaces the logger of aiohttp's ``RequestHandler`` (``aiohttp/web_protocol.py``,
  ``handle_error`` → ``log_exception`` → ``logger.exception``, aiohttp 3.14):
  every request the HTTP parser refuses (a bad header, a stray byte, an
  oversized line) is logged at ERROR with a full traceback, except a bad method
  on a connection's first request.
- Symptom here: anyone who could reach the web port could fill the worker's
  log with tracebacks that page the operator on call, for requests that only
  tell of the client.
- The error response itself is built outside the application, so no
  ``on_response_prepare`` hook sees it: its ``Server`` header names Python's
  and aiohttp's versions (``aiohttp/web_response.py``, ``_prepare_headers``:
  ``headers.setdefault(hdrs.SERVER, SERVER_SOFTWARE)``), telling a scanner
  which known flaws to try.
- :func:`one_line_error_logger` is handed to the web server's runner; its
  ``exception`` writes one WARNING line naming the client's error.
  :func:`hide_server_version` makes the server's default ``Server`` header
  ``wirewatch`` (the client's ``User-Agent`` keeps its own copy).
- Lets go when aiohttp logs client errors below ERROR and lets a server name
  itself; ``tests/unit/test_upstream.py`` shows both plain behaviours.
"""

from __future__ import annotations

import logging

import aiohttp.web_response

__all__ = ["one_line_error_logger", "hide_server_version", "SERVER_NAME"]

SERVER_NAME = "wirewatch"


class _OneLineErrors(logging.LoggerAdapter):
    def exception(self, msg, *args, exc_info=True, **kwargs) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else None
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}" if error else ""
        self.warning(f"{msg}: %s", *args, reason)


def one_line_error_logger(name: str = "wirewatch.web") -> logging.LoggerAdapter:
    """A logger for aiohttp's request handler that writes a client's malformed request as one WARNING line."""
    return _OneLineErrors(logging.getLogger(name), {})


def hide_server_version() -> None:
    """Make every response of this process's aiohttp servers name the server ``wirewatch``, versionless."""
    aiohttp.web_response.SERVER_SOFTWARE = SERVER_NAME
