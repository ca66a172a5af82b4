"""
No error is swallowed (SPEC §1.9): an unexpected exception in a session or a background
task becomes an `internal.error` record — where it happened and the exception's type, no
message or payload — and `earshot_internal_errors_total{where}`, and the traffic goes on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from proxy import turns
from proxy.context import APP
from proxy.heartbeat import Heartbeat
from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream
from tests.helpers import sessions_ended

SECRET = "sk-proj-INaMESSAGEthatMUSTnotBEwritten0123"


def _boom(*_args: Any, **_kw: Any) -> None:
    raise ValueError(f"payload {SECRET}")


async def test_a_failing_turn_handler_is_reported_and_the_traffic_goes_on(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The turn tracker's handler for `response.created` raises: the frame still reaches
    the client, an `internal.error` record says `turns.observe` and `ValueError` (and
    nothing of the message), and the metric counts it.
    """
    for cls, handler in list(turns._HANDLERS.items()):
        if handler is turns.TurnTracker._response_created:
            monkeypatch.setitem(turns._HANDLERS, cls, _boom)
    fake.scripted = False
    proxy = await make_proxy()
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)
    frame = orjson.dumps(
        {
            "type": "response.created",
            "response": {"id": "resp_1", "object": "realtime.response", "status": "in_progress"},
        }
    )
    await fake.send(frame)

    assert frame == (await ws.receive(timeout=5)).data.encode()
    await ws.close()
    await sessions_ended(proxy)
    (error,) = sink.records("internal.error")
    assert ("turns.observe", "ValueError", "error") == (
        error["where"],
        error["error"],
        error["level"],
    )
    assert "conn" in error
    assert SECRET not in sink.text()
    metrics = await (await proxy.get("/metrics")).text()
    assert 'earshot_internal_errors_total{where="turns.observe"} 1.0' in metrics


async def test_a_failing_record_is_reported_and_the_frame_still_forwarded(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Rendering a record raises inside the recorder: the frame is forwarded, a metadata
    record stands for it, and `internal.error` says `records.text`.
    """
    fake.scripted = False
    proxy = await make_proxy()
    # The redactor renders the record (a plain object, even in the compiled build).
    monkeypatch.setattr(proxy.app[APP].redactor, "model", _boom)
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)
    frame = b'{"type":"input_audio_buffer.commit"}'
    await ws.send_str(frame.decode())

    assert frame == await fake.next_frame()
    await ws.close()
    await sessions_ended(proxy)
    # (The upstream's `session.created` fails the same way: one report per frame.)
    assert {"records.text"} == {r["where"] for r in sink.records("internal.error")}
    assert "internal error: ValueError" in [
        r["reason"] for r in sink.records("realtime.undecodable")
    ]
    assert SECRET not in sink.text()


class _Sock:
    closed = False

    async def ping(self, _data: bytes = b"") -> None:
        return None


class _Count:
    frames = 0


async def test_a_failing_dead_leg_callback_is_reported_and_the_clock_goes_on() -> None:
    """
    One session's `dead` callback raises: the heartbeat reports it and still drops the
    next session's silent leg.
    """
    beat = Heartbeat(1.0)
    reported: list[tuple[str, str]] = []
    beat.on_error = lambda where, exc: reported.append((where, type(exc).__name__))
    deaths: list[int] = []
    beat.watch(_Sock(), _Count(), lambda: _boom())  # type: ignore[arg-type]
    beat.watch(_Sock(), _Count(), lambda: deaths.append(1))  # type: ignore[arg-type]
    for now in range(4):
        beat.tick(float(now))
        await asyncio.sleep(0)

    assert [("heartbeat.dead", "ValueError")] == reported
    assert [1] == deaths
