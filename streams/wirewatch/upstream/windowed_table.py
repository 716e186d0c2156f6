"""A windowed table without Faust's expiry bookkeeping, for windows wirewatch expires itself by event time.

- Overrides ``faust.Table._should_expire_keys`` (``faust/tables/base.py``, line
  447 in faust-streaming 0.15.3), which asks ``window.expires is None``, while
  the compiled windows (``faust/_cython/windows.pyx``) keep "never expires" as
  ``expires == 0.0``.
- Symptom here: every windowed write pushed a heap entry nothing takes off
  (memory growing with every count), and a key that a RocksDB store gives back
  as a list could not be hashed when Faust deleted it: the story agent
  crash-looped once its own buckets expired. Faust's expiry also runs on the
  wall clock and forgets what it must expire after a restart (faust-streaming
  #385), so wirewatch expires windows itself (``FaustWindowCounts``).
- Lets go when a window without ``expires`` reads as never expiring upstream;
  ``tests/unit/test_upstream.py`` shows a plain tumbling table still asking to expire.
"""

from __future__ import annotations

import faust

__all__ = ["EventTimeWindowedTable"]


class EventTimeWindowedTable(faust.Table):
    """A table wrapped in windows that wirewatch expires itself, by event time (see ``FaustWindowCounts``).

    faust-streaming's compiled windows keep "never expires" as ``expires == 0.0``
    while its tables ask ``window.expires is None``, so a windowed table that
    never expires still keeps Faust's expiry bookkeeping: a heap entry per
    write, which nothing ever takes off (memory growing with every count), and
    a set of keys per window end, from which a deletion discards the key, and
    a key that a RocksDB store gives back as a list cannot be hashed: the story
    agent crashed as soon as buckets it had written itself expired.
    """

    def _should_expire_keys(self) -> bool:
        return False
