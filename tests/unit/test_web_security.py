"""The worker's web server as a stranger meets it: where it listens, whom it answers, what it sends back.

The server is the worker's own (``create_app(...).app.web``), started without a
broker; requests go over real sockets.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import time
from contextlib import asynccontextmanager

import pytest

from kafka_helpers import free_port
from wirewatch.settings import Settings
from wirewatch.topology.app import create_app

TOKEN = "desk-token-5f3a"


@asynccontextmanager
async def web_server(**settings):
    port = free_port()
    web = create_app(Settings(web_port=port, **settings)).app.web
    web.init_server()
    await web.start_server()
    try:
        yield port
    finally:
        await web.stop_server()


async def request(port: int, path: str = "/api/desk", *, host: str | None = None, headers: dict | None = None):
    """Status, headers and body of one GET."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    fields = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), fields, body


def listening_addresses(port: int) -> set[str]:
    """The local addresses of sockets listening on ``port``, read from the kernel's tables."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            rows = open(table).read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]) if width == 8 else address)
    return found


async def test_the_web_port_listens_on_loopback_only_by_default():
    async with web_server() as port:
        assert listening_addresses(port) == {"127.0.0.1"}


async def test_another_host_name_is_refused_on_loopback_as_a_rebinding_page_would_send():
    async with web_server() as port:
        assert (await request(port, host="attacker.example:6066"))[0] == 421
        assert (await request(port, host=f"localhost:{port}"))[0] == 200
        assert (await request(port, host=f"[::1]:{port}"))[0] == 200


async def test_every_response_carries_the_security_headers_and_no_version():
    async with web_server() as port:
        for path in ("/", "/api/desk", "/metrics", "/no-such-page"):
            status, headers, _ = await request(port, path)
            assert "script-src 'sha256-" in headers["content-security-policy"], path
            assert "unsafe-inline" not in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["x-frame-options"] == "DENY"
            assert headers["server"] == "wirewatch"


async def test_a_token_guards_everything_but_the_probes():
    async with web_server(web_auth_token=TOKEN) as port:
        for path in ("/", "/api/desk", "/metrics"):
            status, headers, _ = await request(port, path)
            assert status == 401 and headers["www-authenticate"].startswith("Basic"), path
        assert (await request(port, headers={"Authorization": "Bearer wrong"}))[0] == 401
        assert (await request(port, headers={"Authorization": f"Bearer {TOKEN}"}))[0] == 200
        basic = base64.b64encode(f"editor:{TOKEN}".encode()).decode()
        assert (await request(port, headers={"Authorization": f"Basic {basic}"}))[0] == 200
        assert (await request(port, headers={"Authorization": "Basic !!!"}))[0] == 401
        assert (await request(port, "/health"))[0] == 200


async def test_a_client_that_never_finishes_its_request_is_disconnected():
    async with web_server(web_idle_timeout_seconds=1.0) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the headers never end
        started = time.monotonic()
        for _ in range(20):  # a header line a quarter second apart, as a slow-loris client sends
            if reader.at_eof():
                break
            writer.write(b"X-Slow: 1\r\n")
            try:
                await asyncio.wait_for(reader.read(1), timeout=0.25)
            except TimeoutError:
                pass
        assert reader.at_eof(), "the server kept a request that never finished"
        assert time.monotonic() - started < 4
        writer.close()


async def test_a_malformed_request_is_one_warning_line(caplog):
    caplog.set_level(logging.DEBUG)
    async with web_server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\x00: x\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
    assert response.split(b"\r\n")[0].endswith(b" 400 Bad Request")
    assert b"\r\nServer: wirewatch\r\n" in response
    about = [record for record in caplog.records if "Error handling request" in record.getMessage()]
    assert about and all(record.levelno == logging.WARNING and not record.exc_info for record in about)
    assert all("\n" not in record.getMessage() for record in about)


@pytest.mark.parametrize("host", ["0.0.0.0"])
def test_an_open_web_host_answers_any_name_unless_names_are_given(host):
    assert Settings(web_host=host).web_host_names() == frozenset()
    assert Settings(web_host=host, web_allowed_hosts="desk.example, wirewatch").web_host_names() == {
        "desk.example", "wirewatch"}
    assert "localhost" in Settings().web_host_names()


async def post(port: int, path: str, body: bytes, headers: dict) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    response = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    return int(response.split(b" ", 2)[1])


async def test_a_verdict_must_be_json_from_this_origin_and_well_formed():
    verdict = b'{"alert_id": "alert-0a1b", "topic": "greenland", "verdict": "noise"}'
    async with web_server() as port:
        assert await post(port, "/api/feedback", verdict, {"Content-Type": "text/plain"}) == 415  # a cross-site form
        assert await post(port, "/api/feedback", verdict, {"Content-Type": "application/json",
                                                           "Origin": "https://attacker.example"}) == 403
        bad = b'{"alert_id": "alert-0a1b", "topic": "greenland", "verdict": "maybe"}'
        assert await post(port, "/api/feedback", bad, {"Content-Type": "application/json"}) == 400
        assert await post(port, "/api/feedback", b"{not json", {"Content-Type": "application/json"}) == 400
    async with web_server(web_auth_token=TOKEN) as port:
        assert await post(port, "/api/feedback", verdict, {"Content-Type": "application/json"}) == 401
