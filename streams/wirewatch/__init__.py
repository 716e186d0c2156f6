"""wirewatch: split news-wire pages into briefs, cluster them into stories, alert on spikes."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
