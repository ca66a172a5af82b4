"""
A `Session` without sockets: stand-ins for both legs that write what happens to them into
one list of effects, and a hand-turned clock. The order of effects is the contract
(SPEC §1): decode → follow → record → send → turns, for every frame, both ways.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import WSMessage, WSMsgType

from proxy.log import make_logger
from proxy.pricing import shipped_table
from proxy.records import EventPolicy, Recorder
from proxy.redact import Policy, Redactor
from proxy.session import Session
from proxy.session_info import SessionInfo
from proxy.turns import TurnTracker


class _Effects:
    """What happened, in order: records logged, frames sent, events the turns saw. (Also
    the log's sink: a record is one effect.)"""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self.append = self.seen.append

    def __eq__(self, other: object) -> bool:
        return self.seen == other

    def __iter__(self) -> Any:
        return iter(self.seen)

    def __repr__(self) -> str:
        return repr(self.seen)

    def msg(self, line: bytes) -> None:
        record = orjson.loads(line)
        self.append(("log", record["event"], record.get("type")))

    debug = info = warning = error = critical = exception = msg


class _Leg:
    """One side's socket: what the session reads from it, and what it sends to it."""

    def __init__(self, name: str, effects: _Effects, fail: bool = False) -> None:
        self.name, self.effects, self.fail = name, effects, fail
        self.inbox: asyncio.Queue[WSMessage] = asyncio.Queue()
        self.closed = False

    async def receive(self) -> WSMessage:
        return await self.inbox.get()

    async def send_frame(self, data: bytes, kind: WSMsgType) -> None:
        if self.fail:
            raise ConnectionResetError("peer gone")
        self.effects.append((f"{self.name}.send", kind, data))
        await asyncio.sleep(0)  # a real send may yield

    async def pong(self, data: bytes) -> None:
        self.effects.append((f"{self.name}.pong", data))

    async def close(self, *, code: int, message: bytes = b"") -> bool:
        self.closed = True
        self.effects.append((f"{self.name}.close", code, message))
        return True

    # What `proxy.aiohttp_private.release` sets on an aiohttp client leg.
    def _set_closed(self) -> None:
        self.closed = True
        self.effects.append((f"{self.name}.released",))

    class _Response:
        def close(self) -> None:
            pass

    _response = _Response()
    _close_code: int | None = None
    _parser: object = None


class _Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _session(
    mode: str = "full", *, turns: bool = False, fail: str | None = None
) -> tuple[Session, _Effects, _Clock]:
    effects, clock = _Effects(), _Clock()
    info = SessionInfo()
    redactor = Redactor(Policy())
    recorder = Recorder(make_logger(effects), redactor, EventPolicy({"default": mode}), info=info)
    tracker = None
    if turns:
        tracker = TurnTracker(
            lambda record: effects.append(("turn", record.EVENT, record.fields())),
            shipped_table(),
            info=info,
        )

    def timed() -> float:
        # The session reads its clock for the turns, and only then: that is when they
        # observe the frame (a compiled tracker's methods cannot be wrapped, a clock can).
        effects.append(("turns",))
        return clock()

    session = Session(
        recorder,
        info,
        client=_Leg("client", effects, fail=fail == "client"),
        upstream=_Leg("upstream", effects, fail=fail == "upstream"),
        turns=tracker,
        clock=timed,
    )
    return session, effects, clock


def _text(event: dict[str, Any]) -> WSMessage:
    return WSMessage(WSMsgType.TEXT, orjson.dumps(event), None)


@pytest.mark.parametrize("direction", ["client", "server"])
async def test_a_frame_is_recorded_then_sent_then_timed(direction: str) -> None:
    """
    One text frame, either way: its `realtime.event` is logged, then its bytes are sent
    to the other leg, then the turns see it — in that order, and nothing else happens.
    """
    session, effects, _ = _session(turns=True)
    msg = _text({"type": "conversation.item.retrieve", "item_id": "item_1"})
    dst, name = (
        (session.upstream, "upstream") if direction == "client" else (session.client, "client")
    )

    assert await session.forward(direction, msg, dst)  # type: ignore[arg-type]

    assert [
        ("log", "realtime.event", "conversation.item.retrieve"),
        (f"{name}.send", WSMsgType.TEXT, msg.data),
        ("turns",),
    ] == effects


async def test_a_folded_frame_is_in_its_summary_before_it_is_sent() -> None:
    """
    Under `summary`, nothing is logged per frame, but the frame is already counted in its
    open summary when the send starts.
    """
    session, effects, _ = _session("summary")
    seen = []
    send = session.client.send_frame

    async def watching(data: bytes, kind: WSMsgType) -> None:
        seen.append(session.recorder.summaries.frames)
        await send(data, kind)

    session.client.send_frame = watching
    delta = {"type": "response.output_text.delta", "item_id": "i", "delta": "hi"}

    for _ in range(3):
        await session.forward("server", _text(delta), session.client)

    assert [1, 2, 3] == seen
    assert [] == [e for e in effects if e[0] == "log"]


async def test_the_session_id_is_followed_before_its_own_record() -> None:
    """
    `session.created` is followed before it is recorded: its own record already carries
    the session's id, and so does every later one.
    """
    session, _, _ = _session()
    sink: list[dict[str, Any]] = []
    session.recorder.log = make_logger(_Lines(sink))
    created = {"type": "session.created", "session": {"id": "sess_1", "model": "gpt-realtime"}}

    await session.forward("server", _text(created), session.client)
    await session.forward("server", _text({"type": "x.y"}), session.client)

    assert ["sess_1", "sess_1"] == [r.get("session") for r in sink]
    assert ("sess_1", "gpt-realtime") == (session.info.session_id, session.info.model)


class _Lines:
    def __init__(self, into: list[dict[str, Any]]) -> None:
        self.into = into

    def msg(self, line: bytes) -> None:
        self.into.append(orjson.loads(line))

    info = warning = error = msg


async def test_turns_are_timed_on_the_sessions_clock() -> None:
    """
    The turns take the session's clock at each forward: a client `response.create` at
    100.000 s and the first audio at 100.350 s give `latency_ms` 350.0 exactly.
    """
    session, effects, clock = _session(turns=True)
    response = {"id": "resp_1", "status": "in_progress"}
    steps: list[tuple[float, str, dict[str, Any]]] = [
        (100.000, "client", {"type": "response.create"}),
        (100.120, "server", {"type": "response.created", "response": response}),
        (
            100.350,
            "server",
            {"type": "response.output_audio.delta", "response_id": "resp_1", "delta": "AAAA"},
        ),
        (
            100.400,
            "server",
            {"type": "response.done", "response": {**response, "status": "completed"}},
        ),
    ]

    for now, direction, event in steps:
        clock.now = now
        dst = session.upstream if direction == "client" else session.client
        await session.forward(direction, _text(event), dst)  # type: ignore[arg-type]
    session.turns.close(200.0)  # type: ignore[union-attr]

    (turn,) = [e[2] for e in effects if e[0] == "turn" and e[1] == "realtime.turn"]
    assert (350.0, "client") == (turn["latency_ms"], turn["trigger"])


async def test_a_failed_send_ends_the_session_on_the_receiving_side() -> None:
    """
    A frame that cannot be sent (its receiver's connection is gone) ends the session as
    that receiver's loss — for a server frame, the client's — and the turns never see it.
    """
    session, effects, _ = _session(turns=True, fail="client")

    forwarded = await session.forward("server", _text({"type": "x.y"}), session.client)

    assert (False, "client", 1006) == (forwarded, session.end.by, session.end.code)
    assert [] == [e for e in effects if e[0] == "turns"]


async def test_a_binary_frame_is_counted_recorded_as_metadata_and_sent_as_it_came() -> None:
    """
    A binary frame: an `undecodable` record (metadata only), then the same bytes sent.
    """
    session, effects, _ = _session(turns=True)
    msg = WSMessage(WSMsgType.BINARY, b"\x00\x01secret", None)

    assert await session.forward("client", msg, session.upstream)

    assert [
        ("log", "realtime.undecodable", None),
        ("upstream.send", WSMsgType.BINARY, b"\x00\x01secret"),
    ] == effects
    assert (1, 1) == (session.counts["client"].frames, session.counts["client"].undecodable)


async def test_a_failure_inside_the_recorder_is_a_metadata_record_and_the_frame_goes_on() -> None:
    """
    A bug in recording (here rendering the record raises) is fail-closed for the log
    (an `undecodable` record naming the exception type) and fail-open for the traffic.
    """
    session, effects, _ = _session()
    errors: list[str] = []
    session.recorder.on_error = lambda where, exc: errors.append(where)

    def broken(*_: Any, **__: Any) -> None:
        raise KeyError("boom")

    # What the recorder calls to render the record (the redactor: a plain object).
    session.recorder._redactor.model = broken  # type: ignore[method-assign]
    msg = _text({"type": "x.y"})

    assert await session.forward("client", msg, session.upstream)

    assert [
        ("log", "realtime.undecodable", None),
        ("upstream.send", WSMsgType.TEXT, msg.data),
    ] == effects
    assert ["records.text"] == errors


async def test_a_client_close_goes_upstream_as_it_came_and_the_answer_goes_back() -> None:
    """
    The client's Close 4000 "bye" reaches the upstream as a Close frame with that payload;
    a ping on the way is answered on its own leg (never forwarded); the upstream's answer
    (4000) closes the client with it, and the upstream leg is released without a second
    Close.
    """
    session, effects, _ = _session()
    client, upstream = session.client, session.upstream
    client.inbox.put_nowait(WSMessage(WSMsgType.PING, b"p", None))
    client.inbox.put_nowait(WSMessage(WSMsgType.CLOSE, 4000, "bye"))
    upstream.inbox.put_nowait(WSMessage(WSMsgType.CLOSE, 4000, "bye"))
    upstream_sent = asyncio.Event()
    send = upstream.send_frame

    async def held(data: bytes, kind: WSMsgType) -> None:
        await send(data, kind)
        upstream_sent.set()

    upstream.send_frame = held
    upstream.receive = _after(upstream_sent, upstream.receive)

    session.start_pump("pump")
    await asyncio.wait_for(session.client_to_upstream(), 5)
    await session.finish()

    assert [
        ("client.pong", b"p"),
        ("upstream.send", WSMsgType.CLOSE, b"\x0f\xa0bye"),
        ("client.close", 4000, b"bye"),
        ("upstream.released",),
    ] == effects
    assert ("client", 4000) == (session.end.by, session.end.code)


def _after(event: asyncio.Event, receive: Any) -> Any:
    async def wait_then_receive() -> WSMessage:
        await event.wait()
        return await receive()  # type: ignore[no-any-return]

    return wait_then_receive
