"""The ``wirewatch`` command group; the commands register themselves on it."""

from __future__ import annotations

import click

from .. import __version__

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wirewatch")
def main() -> None:
    """wirewatch: a stream processor for news-wire desks."""
