"""
`ws.close` says who ended the session and with which code, literally: the side that
started the close (or whose connection was lost) and the code that side sent — 1005 for
a Close without a code, 1006 for a lost connection, never 0 (SPEC §4).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSMsgType

from proxy.context import APP
from proxy.server import drain
from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream


async def _open(proxy: Any, **kw: Any) -> Any:
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime", **kw)
    await ws.receive(timeout=5)
    return ws


async def _close_record(sink: MemorySink) -> dict[str, Any]:
    for _ in range(200):
        if records := sink.records("ws.close"):
            return records[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no ws.close record")


async def test_a_client_that_stops_reading_then_vanishes_closed_the_session(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    The proxy is blocked sending to a client that does not read; when that client's
    connection dies, the record blames the client (1006), not the upstream.
    """
    ws = await _open(proxy, max_msg_size=0)
    frame = b'{"type":"response.output_audio.delta","delta":"' + b"A" * 1_000_000 + b'"}'
    sender = asyncio.create_task(_send_forever(fake, frame))
    await asyncio.sleep(0.5)  # the client reads nothing: buffers fill, the proxy blocks

    ws._response.connection.transport.abort()
    close = await _close_record(sink)
    sender.cancel()

    assert ("client", 1006) == (close["closed_by"], close["code"])


async def _send_forever(fake: FakeUpstream, frame: bytes) -> None:
    while True:
        await fake.send(frame)


async def test_a_drain_is_recorded_with_the_code_earshot_sent(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    SIGTERM's drain closes the client with 1001; the record says the proxy closed it
    with 1001, not the 1000 the client answered with.
    """
    ws = await _open(proxy)

    await drain(proxy.app, 0)
    msg = await ws.receive(timeout=5)
    close = await _close_record(sink)

    assert (WSMsgType.CLOSE, 1001) == (msg.type, msg.data)
    assert ("proxy", 1001) == (close["closed_by"], close["code"])
    assert not proxy.app[APP].sessions


async def test_a_close_without_a_code_is_recorded_as_1005(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    A client Close frame with no status code is recorded as 1005, never as 0.
    """
    ws = await _open(proxy)

    await ws._writer.send_frame(b"", WSMsgType.CLOSE)
    close = await _close_record(sink)

    assert ("client", 1005) == (close["closed_by"], close["code"])


async def test_a_frame_over_the_limit_is_recorded_as_the_proxy_closing_with_1009(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    The proxy refuses a frame over `limits.max_frame_bytes` with 1009 on both legs, and
    the record says so: closed by the proxy, code 1009 (not the client, 1006).
    """
    proxy = await make_proxy(limits={"max_frame_bytes": 64 * 1024})
    ws = await _open(proxy)

    await ws.send_frame(b'{"type":"x","pad":"' + b"a" * 100_000 + b'"}', WSMsgType.TEXT)
    await ws.receive(timeout=5)
    await asyncio.wait_for(fake.closed.wait(), 5)
    close = await _close_record(sink)

    assert [1009] == fake.close_codes
    assert ("proxy", 1009) == (close["closed_by"], close["code"])


async def test_an_upstream_frame_over_the_limit_is_recorded_as_the_proxy_closing_with_1009(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    An upstream frame over the limit: the client gets 1009 and the record says the proxy
    closed with 1009.
    """
    proxy = await make_proxy(limits={"max_frame_bytes": 64 * 1024})
    ws = await _open(proxy)

    await fake.send(b'{"type":"x","pad":"' + b"a" * 100_000 + b'"}')
    msg = await ws.receive(timeout=5)
    close = await _close_record(sink)

    assert (WSMsgType.CLOSE, 1009) == (msg.type, msg.data)
    assert ("proxy", 1009) == (close["closed_by"], close["code"])
