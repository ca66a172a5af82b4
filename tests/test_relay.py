"""
The WebSocket relay: frames arrive byte for byte, in order, after their records, and
sessions close the way the peer closed them.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType, web

from proxy import closing
from proxy.context import APP
from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream
from tests.helpers import sessions_ended


async def _connect(proxy: Any, path: str = "/v1/realtime?model=gpt-realtime", **kw: Any) -> Any:
    ws = await proxy.ws_connect(
        path, headers={"Authorization": "Bearer sk-test-abcdefghijklmnop1234"}, **kw
    )
    greeting = await ws.receive(timeout=5)
    assert WSMsgType.TEXT == greeting.type
    return ws


async def test_frames_are_forwarded_byte_for_byte(proxy: Any, fake: FakeUpstream) -> None:
    """
    A frame with unusual spacing, escapes and a 2**70 integer arrives unchanged.
    """
    ws = await _connect(proxy)
    frame = b'{ "type":"session.update" , "n": 1180591620717411303424, "s":"\\u00e9"}'

    await ws.send_frame(frame, WSMsgType.TEXT)

    assert frame == await fake.next_frame()
    await ws.close()


async def test_server_frames_reach_the_client_unchanged(proxy: Any, fake: FakeUpstream) -> None:
    """
    Server frames, including the greeting, arrive at the client as sent.
    """
    ws = await _connect(proxy)
    frame = b'{"type":"response.output_text.delta","delta":"caf\\u00e9 \xc3\xa9","x" : [1,2 ]}'

    await fake.send(frame)
    msg = await ws.receive(timeout=5)

    assert frame.decode() == msg.data
    await ws.close()


async def test_client_close_code_and_reason_reach_upstream(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    The client's close code and reason propagate to the upstream and are logged.
    """
    ws = await _connect(proxy)

    await ws.close(code=4000, message=b"bye now")
    await asyncio.wait_for(fake.closed.wait(), 5)
    await sessions_ended(proxy)

    assert [4000] == fake.close_codes
    (close,) = sink.records("ws.close")
    assert ("client", 4000, "bye now") == (close["closed_by"], close["code"], close["reason"])


async def test_a_client_close_without_a_code_reaches_the_upstream_without_one(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    A client Close frame with no status code goes on to the upstream as it came: the
    upstream sees no code (aiohttp reports that as 0), not 1000.
    """
    ws = await _connect(proxy, autoclose=False)

    await ws.send_frame(b"", WSMsgType.CLOSE)
    answer = await ws.receive(timeout=5)
    await asyncio.wait_for(fake.closed.wait(), 5)
    await sessions_ended(proxy)

    assert [0] == fake.close_codes
    assert WSMsgType.CLOSE == answer.type
    (close,) = sink.records("ws.close")
    assert ("client", 1005) == (close["closed_by"], close["code"])


async def test_the_client_is_answered_with_the_upstreams_close_code_and_reason(
    proxy: Any, fake: FakeUpstream
) -> None:
    """
    The client's Close is answered with what the upstream answered, code and reason,
    not an echo of the client's own.
    """
    fake.close_answer = (4003, b"upstream says bye")
    ws = await _connect(proxy, autoclose=False)

    await ws.send_frame(struct.pack("!H", 4000) + b"client says bye", WSMsgType.CLOSE)
    answer = await ws.receive(timeout=5)
    await asyncio.wait_for(fake.closed.wait(), 5)

    assert [4000] == fake.close_codes
    assert (WSMsgType.CLOSE, 4003, "upstream says bye") == (answer.type, answer.data, answer.extra)


async def test_an_upstream_that_does_not_answer_a_close_is_dropped(
    proxy: Any, fake: FakeUpstream, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    An upstream that never answers the client's Close (here it stopped reading) is
    dropped after the close timeout, and the client gets its own code back.
    """
    monkeypatch.setattr(closing, "CLOSE_TIMEOUT", 0.3)
    fake.stall = True
    ws = await _connect(proxy, autoclose=False)
    await ws.send_str('{"type":"input_audio_buffer.clear"}')  # the fake stalls on it
    await fake.next_frame()

    await ws.send_frame(struct.pack("!H", 4000) + b"bye", WSMsgType.CLOSE)
    answer = await ws.receive(timeout=5)
    await sessions_ended(proxy)
    fake.resume.set()

    assert (WSMsgType.CLOSE, 4000, "bye") == (answer.type, answer.data, answer.extra)
    (close,) = sink.records("ws.close")
    assert ("client", 4000) == (close["closed_by"], close["code"])


async def test_upstream_close_code_reaches_client(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    The upstream's close code and reason propagate to the client.
    """
    ws = await _connect(proxy)

    await fake.sockets[-1].close(code=4001, message=b"session expired")
    msg = await ws.receive(timeout=5)

    assert (WSMsgType.CLOSE, 4001, "session expired") == (msg.type, msg.data, msg.extra)
    await sessions_ended(proxy)
    (close,) = sink.records("ws.close")
    assert ("upstream", 4001) == (close["closed_by"], close["code"])


async def test_upstream_close_is_answered_with_its_own_code(proxy: Any, fake: FakeUpstream) -> None:
    """
    The upstream's Close is answered with the client's answer (here the same code, as
    RFC 6455 §5.5.1 suggests; Autobahn 7.7.x), not with 1001.
    """
    ws = await _connect(proxy, autoclose=False)

    await ws.send_str('{"type":"test.close_me","code":4002}')
    msg = await ws.receive(timeout=5)
    await ws.close(code=4002)
    await asyncio.wait_for(fake.closed.wait(), 5)

    assert 4002 == msg.data
    # The code the upstream got back in answer to its own Close:
    assert [4002] == fake.close_codes


@pytest.mark.parametrize("mode", ["full", "summary"])
@pytest.mark.parametrize("direction", ["client", "server"])
async def test_each_frame_is_recorded_before_the_proxy_sends_it_on(
    make_proxy: ProxyFactory,
    fake: FakeUpstream,
    sink: MemorySink,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    direction: str,
) -> None:
    """
    At the moment the proxy hands a frame to the other leg's socket, that frame's record
    (or its contribution to an open summary) is already in the sink: both directions, for
    events logged whole and for folded ones (SPEC §1, invariant 2).
    """
    proxy = await make_proxy(log={"events": {"default": mode}})
    ws = await _connect(proxy)
    (live,) = proxy.app[APP].live
    recorder = live.recorder
    seen: list[tuple[bytes, int, int]] = []

    def watching(send: Any) -> Any:
        async def send_frame(self: Any, data: bytes, *args: Any, **kw: Any) -> None:
            # Only the test's frames, as the proxy sends them on (not as the test's own
            # client or fake upstream sends them).
            if b"lbf-" in data and self is not ws and self not in fake.sockets:
                folded = recorder.summaries.frames
                seen.append((data, len(sink.records("realtime.event")), folded))
            await send(self, data, *args, **kw)

        return send_frame

    for cls in (web.WebSocketResponse, ClientWebSocketResponse):
        monkeypatch.setattr(cls, "send_frame", watching(cls.send_frame))
    frames = [
        f'{{"type":"response.output_text.delta","event_id":"lbf-{i}","delta":"hi"}}'.encode()
        for i in range(3)
    ]
    before = len(sink.records("realtime.event"))
    folded_before = recorder.summaries.frames

    for frame in frames:
        if direction == "client":
            await ws.send_frame(frame, WSMsgType.TEXT)
            await fake.next_frame()
        else:
            await fake.send(frame)
            await ws.receive(timeout=5)

    logged = [(f, before + i + 1, 0) for i, f in enumerate(frames)]
    folded = [(f, before, folded_before + i + 1) for i, f in enumerate(frames)]
    assert (logged if mode == "full" else folded) == seen
    await ws.close()
