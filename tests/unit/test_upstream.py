"""The upstream behaviour each workaround in ``wirewatch.upstream`` guards against is still there, and the
versions it was proven with are the ones installed. When one of these fails after an upgrade, read the
workaround's docstring: it says what would let it go."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import faust
from faust.transport.drivers.aiokafka import Consumer as PlainConsumer
from faust.types import TP

from wirewatch.settings import Settings
from wirewatch.topology.app import create_app
from wirewatch.upstream import PROVEN_WITH
from wirewatch.upstream.current_event import make_current
from wirewatch.upstream.windowed_table import EventTimeWindowedTable

RAW = "upstream-test.wire.raw"


def test_the_installed_faust_and_aiokafka_are_the_versions_the_workarounds_were_proven_with():
    installed = {name: version(name) for name in PROVEN_WITH}
    assert installed == PROVEN_WITH, (
        "faust-streaming or aiokafka changed: run the reliability tests several times and this file, "
        "then review each module of wirewatch.upstream before moving PROVEN_WITH"
    )


def test_fausts_own_commit_check_skips_a_hole_of_one_record():
    consumer = create_app(Settings(app_id="upstream-test", topic_raw=RAW)).app.consumer
    tp = TP(RAW, 0)
    consumer._committed_offset[tp] = 45
    consumer._acked[tp].extend([46, 47])
    consumer._acked_index[tp].update([46, 47])
    assert consumer._new_offset(tp) is None, "the guarded consumer waits for 45"
    assert PlainConsumer._new_offset(consumer, tp) == 48, "plain Faust commits 48: record 45 is lost"


def test_a_tumbling_table_that_never_expires_still_asks_faust_to_expire_its_keys():
    app = faust.App("upstream-test-tables", autodiscover=False)
    plain = app.Table("plain", default=int).tumbling(300)
    assert plain.table.window.expires == 0.0, "the compiled window keeps 'never' as 0.0"
    assert plain.table._should_expire_keys(), "and the table, asking 'expires is None', expires"
    guarded = app.tables.add(EventTimeWindowedTable(app, name="guarded", default=int, beacon=app.tables.beacon))
    assert not guarded.tumbling(300).table._should_expire_keys()


class _Event:
    """Enough of an event for the stream's bookkeeping: an object a weak reference can point to."""


def test_making_an_event_current_through_the_stream_moves_the_streams_own_event():
    app = faust.App("upstream-test-events", autodiscover=False)
    stream = app.stream(app.channel())
    buffered, batch_member = _Event(), _Event()
    stream._set_current_event(buffered)
    stream._set_current_event(batch_member)
    assert stream.current_event is batch_member, "Stream.take would ack this one instead of the one it buffered"

    stream._set_current_event(buffered)
    make_current(batch_member)
    assert faust.current_event() is batch_member, "tables write to this event's changelog partition"
    assert stream.current_event is buffered, "and the stream still knows the event it buffered"


def test_the_core_imports_neither_faust_nor_aiokafka():
    core = [
        "parser", "markup", "pipeline", "ordering", "terms", "embedding", "clustering", "windows", "spikes", "engine",
        "progress",
    ]
    script = (
        "import sys\n"
        + "".join(f"import wirewatch.core.{name}\n" for name in core)
        + "import wirewatch.models, wirewatch.settings, wirewatch.offline.backtest, wirewatch.offline.evaluation\n"
        + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('faust', 'aiokafka', 'mode')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_wordllama_cannot_load_the_model_its_own_wheel_ships_without_a_download(tmp_path):
    import pytest
    from wordllama import WordLlama

    from wirewatch.upstream.wordllama import model_files

    tokenizer, weights = model_files()
    assert tokenizer.is_file() and weights.is_file(), "the wheel ships both files"
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        # An empty cache, downloads off: the tokenizer the wheel ships is looked for under the wrong folder.
        WordLlama.load(cache_dir=tmp_path, disable_download=True)


async def test_a_plain_aiohttp_server_logs_a_malformed_request_as_an_error_and_names_its_version(caplog):
    import asyncio
    import inspect
    import logging

    import aiohttp.http
    import aiohttp.web_response
    from aiohttp import web

    from kafka_helpers import free_port

    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    runner = web.AppRunner(web.Application())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\x00: x\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
    finally:
        await runner.cleanup()
    # The server names itself by web_response's copy of aiohttp's version string (which a worker started in this
    # process replaced, as hide_server_version does); the string itself carries the versions.
    assert b"\r\nServer: " + aiohttp.web_response.SERVER_SOFTWARE.encode() + b"\r\n" in response
    assert "SERVER_SOFTWARE" in inspect.getsource(aiohttp.web_response.StreamResponse._prepare_headers)
    assert "aiohttp/" in aiohttp.http.SERVER_SOFTWARE
    errors = [record for record in caplog.records if record.name == "aiohttp.server"]
    assert errors and errors[0].levelno == logging.ERROR and errors[0].exc_info
