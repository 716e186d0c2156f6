"""The ``wirewatch`` command.

Records go to stdout as JSON lines (``tail`` prints readable lines on a
terminal); messages for people go to stderr. Errors exit non-zero with a
one-line reason, never a traceback. Commands that need no broker live in
:mod:`.offline`, those that talk to the cluster in :mod:`.broker`.
"""

from . import alerts, broker, offline  # noqa: F401  (each registers its commands on the group)
from .group import main

__all__ = ["main"]
