"""Workarounds for upstream behaviour of faust-streaming, aiokafka, aiohttp and wordllama: one module per defect.

Each module's docstring names the upstream symbol it overrides, the version it
was written against, where upstream the behaviour lives, the symptom it caused
here, and what would let it go. ``tests/unit/test_upstream.py`` shows each plain
upstream behaviour still there (so an upgrade that fixes one is noticed) and
fails when the installed versions differ from :data:`PROVEN_WITH`.

- :mod:`.consumer`: commits past unprocessed records (``GuardedConsumer``).
- :mod:`.windowed_table`: expiry bookkeeping of windowed tables that never expire.
- :mod:`.producer_flush`: a producer flush that returns with records still buffered.
- :mod:`.current_event`: making an event current without confusing ``Stream.take``.
- :mod:`.aiohttp_errors`: malformed HTTP requests logged as ERROR tracebacks.
- :mod:`.wordllama`: a shipped model that ``WordLlama.load`` cannot find, and downloads instead.

Besides these, settings that only tune Faust (stream buffer size, producer
buffer size, the story stage's batch wait) say why in ``topology/app.py`` and
``settings.py``.
"""

#: The versions these workarounds were proven with, by the crash, takeover and restart tests.
PROVEN_WITH = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "aiohttp": "3.14.5"}

__all__ = ["PROVEN_WITH"]
