"""
What an attacker tried — a hostile client or a compromised upstream, on loopback — and
what earshot does: keys never reach a log line, stderr or another host; hostile input
never loses a record or stalls the proxy. docs/reliability.md has the table.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.conftest import MemorySink, ProxyFactory
from tests.test_cli import ROOT, _free_port, _wait_healthy
from tests.fake_upstream import FakeUpstream

KEY = "sk-proj-ATTACKERsawTHIS0123456789abcdef"
BROWSER_KEY = "ek_68af2b7c1d3e4f5aBROWSERkey"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirected_handshake_is_returned_not_followed(
    make_proxy: ProxyFactory,
    fake: FakeUpstream,
    sink: MemorySink,
    aiohttp_server: Any,
    status: int,
) -> None:
    """
    An upstream answering the upgrade with a redirect to another host: earshot never
    dials it (the client's keys would go there); the client gets the 3xx as it came,
    status, `Location` and body, and the log says so.
    """
    dialled: list[dict[str, str]] = []

    async def other(request: web.Request) -> web.Response:
        dialled.append(dict(request.headers))
        return web.Response(status=400)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", other)
    other_host = await aiohttp_server(app)
    location = str(other_host.make_url("/v1/realtime?model=gpt-realtime"))
    fake.refuse = (status, b'{"moved":true}')
    fake.refuse_headers = {"Location": location}
    proxy = await make_proxy()

    got = await proxy.get(
        "/v1/realtime?model=gpt-realtime",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
            "Sec-WebSocket-Protocol": f"realtime, openai-insecure-api-key.{BROWSER_KEY}",
            "api-key": KEY,
            "X-Api-Key": KEY,
        },
        allow_redirects=False,
    )

    assert (status, location, b'{"moved":true}') == (
        got.status,
        got.headers["Location"],
        await got.read(),
    )
    assert [] == dialled
    (rejected,) = sink.records("ws.rejected")
    assert ("handshake_redirect", status) == (rejected["kind"], rejected["status"])
    assert KEY not in sink.text() and BROWSER_KEY not in sink.text()


async def test_the_subprotocol_the_upstream_chose_is_redacted(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    An upstream that picks the browser's key element as its subprotocol: `ws.open`
    logs it fingerprinted, like the offered list.
    """
    fake.protocols = (f"openai-insecure-api-key.{BROWSER_KEY}",)
    proxy = await make_proxy()
    ws = await proxy.ws_connect(
        "/v1/realtime?model=gpt-realtime",
        protocols=("realtime", f"openai-insecure-api-key.{BROWSER_KEY}"),
    )
    await ws.receive(timeout=5)
    await ws.close()

    (opened,) = sink.records("ws.open")
    assert opened["subprotocol"].startswith("openai-insecure-api-key.[redacted:secret:")
    assert BROWSER_KEY not in sink.text()


async def _raw_request(proxy: Any, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(proxy.server.host, proxy.server.port)
    writer.write(request)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    return head


@pytest.mark.parametrize(
    ("request_head", "events"),
    [
        (
            b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nX-Note: caf\xe9 \xff\r\n"
            b"Content-Length: 2\r\nContent-Type: application/json\r\n\r\n{}",
            {"http.request", "http.exchange"},
        ),
        (
            b"GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Note: \xc3\x28\xa0\xa1\r\n\r\n",
            {"ws.open"},
        ),
    ],
)
async def test_a_header_that_is_not_utf8_never_loses_its_record(
    proxy: Any, fake: FakeUpstream, sink: MemorySink, request_head: bytes, events: set[str]
) -> None:
    """
    A client putting bytes that are not UTF-8 in a header cannot hide its activity: the
    record is written, the bytes escaped (`\\xNN`), never `log.render_failed`.
    """
    await _raw_request(proxy, request_head)
    await asyncio.sleep(0.2)

    written = {r["event"] for r in sink.records()}
    assert events <= written
    assert "log.render_failed" not in written
    assert "\\xff" in sink.text() or "\\xa0" in sink.text()


def test_unicode_line_breaks_are_escaped_in_records() -> None:
    """
    U+2028, U+2029 and U+0085 inside a string are written escaped, so a reader that splits
    on Unicode line breaks still sees one record per line, and the value reads back equal.
    """
    from proxy.log import render

    text = "one\u2028two\u2029three\u0085four"

    line = render(None, "info", {"event": "realtime.event", "text": text})

    assert 1 == len(line.decode().splitlines())
    assert text == orjson.loads(line)["text"]


MALFORMED = [
    b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\x01\r\n\r\n",
    b"GET /v1/realtime?api-key=KEY\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nX-Big: KEY" + b"A" * 9000 + b"\r\n\r\n",
    b"GET /v1/realtime HTTP/1.1\r\nAuth orization: KEY\r\n\r\n",
    b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /v1/realtime HTTP/9.9\r\nAuthorization: Bearer KEY\r\n\r\n",
    b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\r\n"
    b"Content-Length: 100\r\n\r\n{\"a\":",
]


def _slices(secret: str, n: int = 12) -> list[str]:
    return [secret[i : i + n] for i in range(len(secret) - n + 1)]


async def test_malformed_requests_put_no_key_on_stdout_or_stderr(
    upstream: Any, tmp_path: Path
) -> None:
    """
    Requests aiohttp's parser refuses (control characters, a header over 8 KB, a bad
    header name, a bad chunk size, a bad HTTP version, an aborted upload) with a key in
    them: the shipped default config, and neither stdout, stderr nor the log has the key
    or any 12-character slice of it; the log has a `library.log` record for each.
    """
    _fake, server = upstream
    port = _free_port()
    env = {**os.environ, "EARSHOT_UPSTREAM_URL": str(server.make_url("")).rstrip("/")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config", "config/default.yaml", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await _wait_healthy(port, proc)
        for request in MALFORMED:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request.replace(b"KEY", KEY.encode()))
            await writer.drain()
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(reader.read(1024), 0.5)
            writer.close()
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()

    text = (out + err).decode("utf-8", "replace")
    assert [] == [s for s in _slices(KEY) if s in text]
    assert b"Traceback" not in err
    library = [r for r in map(orjson.loads, out.splitlines()) if r["event"] == "library.log"]
    assert len(MALFORMED) - 1 <= len(library)  # the aborted upload may log nothing


@pytest.mark.parametrize(
    "target",
    [
        "/v1/realtime/%2e%2e/%2e%2e/admin",
        "/v1/realtime/%2E%2E/admin",
        "/v1/realtime/..%2fadmin",
        "/v1/realtime/%2f../admin",
        "/v1/realtime/..%5cadmin",
        "/v1/realtime/..\\admin",
        "/v1/realtime/%252e%252e/admin",
        "/v1/realtime/./client_secrets",
        "/v1/realtime//client_secrets",
        "/v1/realtime/calls/x/..",
        "/v1/realtime/client_secrets%00",
    ],
)
async def test_a_path_that_is_not_its_own_normal_form_is_not_forwarded(
    proxy: Any, fake: FakeUpstream, target: str
) -> None:
    """
    Encoded dots, slashes and backslashes, double encoding and dot segments could be
    resolved by the upstream outside the forwarded prefixes: 404, and nothing forwarded.
    """
    head = await _raw_request(
        proxy, f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode()
    )

    assert head.startswith(b"HTTP/1.1 404")
    assert [] == fake.requests
