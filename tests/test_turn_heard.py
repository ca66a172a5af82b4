"""
Turns as the user lived them (SPEC §4a): a turn's record waits until its audio is heard
out, cut or the session ends; `user_wait_ms` spans tool calls; `speech_ms`, the user's
words and what transcribing them cost; a refused `response.create`; prices per minute.

The unit tests drive a tracker with a hand-turned clock (exact figures); the ones through
a proxy check each figure against the same interval measured at the test's client, within
TOLERANCE_MS (client and proxy share one event loop: scheduling on a busy two-core
machine separates the two measurements by tens of milliseconds, not hundreds).
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import orjson
import pytest

import protocol
from proxy.pricing import cost, shipped_table
from proxy.session_info import SessionInfo
from proxy.turns import TurnTracker
from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream
from tests.helpers import observe

TOLERANCE_MS = 80.0
PCM_MS = 48  # bytes per ms of 24 kHz PCM16


def _audio(ms: int) -> str:
    return base64.b64encode(bytes(PCM_MS * ms)).decode()


class _Run:
    """A tracker fed decoded frames at hand-set times; its records by kind."""

    def __init__(self, model: str = "gpt-realtime", **info: Any) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.tracker = TurnTracker(
            lambda r: self.records.append((r.EVENT, r.fields())),
            shipped_table(),
            info=SessionInfo(model=model, **info),
            transcript=lambda words: f"<{words}>",  # the text policy's rendering
        )

    def at(self, now: float, direction: str, **event: Any) -> None:
        frame = orjson.dumps(event)
        observe(self.tracker, direction, protocol.decode(frame, direction), now)  # type: ignore[arg-type]

    def turns(self) -> list[dict[str, Any]]:
        return [f for e, f in self.records if e == "realtime.turn"]

    def response(self, now: float, rid: str, audio_ms: int = 0, **done: Any) -> None:
        """`response.created` at `now`, its audio at +0.1 s, `response.done` at +0.2 s."""
        self.at(now, "server", type="response.created", response={"id": rid})
        if audio_ms:
            self.at(
                now + 0.1,
                "server",
                type="response.output_audio.delta",
                response_id=rid,
                item_id=f"item_{rid}",
                delta=_audio(audio_ms),
            )
        self.at(
            now + 0.2,
            "server",
            type="response.done",
            response={"id": rid, "status": "completed", **done},
        )


def test_a_turn_with_audio_is_written_once_its_audio_has_played() -> None:
    """
    1000 ms of audio, its first delta forwarded at 10.1 s: nothing at `response.done`
    (10.2 s) nor at 11.09 s; at 11.1 s the record, heard in full and not interrupted.
    """
    run = _Run()
    run.at(10.0, "client", type="response.create")
    run.response(10.0, "r1", audio_ms=1000)

    assert [] == run.turns()
    run.tracker.tick(11.09)
    assert [] == run.turns()
    run.tracker.tick(11.1)
    (turn,) = run.turns()
    assert (False, 1000.0, 1000.0) == (
        turn["interrupted"],
        turn["heard_ms"],
        turn["output_audio_ms"],
    )


@pytest.mark.parametrize(
    ("cut", "heard"),
    [
        ({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0}, 400.0),
        ({"type": "response.cancel"}, 400.0),
        ({"type": "conversation.item.truncate", "item_id": "item_r1", "audio_end_ms": 380}, 380.0),
    ],
)
def test_a_cut_after_response_done_marks_the_turn_interrupted_where_it_was_heard(
    cut: dict[str, Any], heard: float
) -> None:
    """
    The audio was all generated (response.done at 10.2 s) but the user cut it 400 ms into
    playing: speech started, the client cancelled, or the client truncated at 380 ms.
    The turn is interrupted, and `heard_ms` is what was heard.
    """
    run = _Run()
    run.at(10.0, "client", type="response.create")
    run.response(10.0, "r1", audio_ms=1000)
    direction = "server" if cut["type"].startswith("input_audio_buffer") else "client"

    run.at(10.5, direction, **cut)

    (turn,) = run.turns()
    assert (True, heard) == (turn["interrupted"], turn["heard_ms"])


def test_a_session_that_ends_before_the_audio_played_cuts_it() -> None:
    """
    The session closes 250 ms into 1000 ms of audio: the turn is written at the close,
    interrupted, heard 250 ms.
    """
    run = _Run()
    run.at(10.0, "client", type="response.create")
    run.response(10.0, "r1", audio_ms=1000)

    run.tracker.close(10.35)

    (turn,) = run.turns()
    assert (True, 250.0, "completed") == (turn["interrupted"], turn["heard_ms"], turn["status"])


def test_a_turn_without_audio_is_written_at_response_done() -> None:
    """
    A text answer: the record at `response.done`, nothing to hear.
    """
    run = _Run()
    run.at(10.0, "client", type="response.create")
    run.at(10.1, "server", type="response.created", response={"id": "r1"})
    run.at(10.2, "server", type="response.output_text.delta", response_id="r1", delta="Hi")
    run.at(10.3, "server", type="response.done", response={"id": "r1", "status": "completed"})

    (turn,) = run.turns()
    assert (False, 0.0, 200.0) == (turn["interrupted"], turn["heard_ms"], turn["latency_ms"])


def test_the_users_wait_spans_the_tool_call() -> None:
    """
    Speech ends at 10.0 s (VAD), the model calls a tool (arguments at 10.5 s), the app
    answers at 10.8 s and asks for a response, whose audio starts at 11.3 s. The second
    turn's latency is 11.3 - 10.8 = 500 ms; the user waited 11.3 - 10.0 = 1300 ms.
    """
    run = _Run()
    run.at(10.0, "server", type="input_audio_buffer.speech_stopped", audio_end_ms=900)
    run.at(10.05, "server", type="response.created", response={"id": "r1"})
    run.at(
        10.5, "server", type="response.function_call_arguments.delta", response_id="r1", delta="{}"
    )
    run.at(
        10.5,
        "server",
        type="response.function_call_arguments.done",
        response_id="r1",
        call_id="c1",
        name="lookup",
        arguments="{}",
    )
    run.at(10.55, "server", type="response.done", response={"id": "r1", "status": "completed"})
    item = {"type": "function_call_output", "call_id": "c1", "output": "{}"}
    run.at(10.8, "client", type="conversation.item.create", item=item)
    run.at(10.8, "client", type="response.create")
    run.at(10.9, "server", type="response.created", response={"id": "r2"})
    run.at(11.3, "server", type="response.output_audio.delta", response_id="r2", delta=_audio(100))
    run.at(11.35, "server", type="response.done", response={"id": "r2", "status": "completed"})
    run.tracker.tick(11.4)

    first, second = run.turns()
    assert (500.0, 500.0) == (first["latency_ms"], first["user_wait_ms"])
    assert ("client", 500.0, 1300.0) == (
        second["trigger"],
        second["latency_ms"],
        second["user_wait_ms"],
    )


def test_a_client_response_create_not_after_a_tool_starts_a_new_user_turn() -> None:
    """
    A push-to-talk client: each `response.create` without a tool output before it is the
    user's input: its `user_wait_ms` equals its latency.
    """
    run = _Run()
    run.at(10.0, "client", type="response.create")
    run.at(10.1, "server", type="response.created", response={"id": "r1"})
    run.at(10.4, "server", type="response.output_text.delta", response_id="r1", delta="a")
    run.at(10.5, "server", type="response.done", response={"id": "r1", "status": "completed"})
    run.at(20.0, "client", type="response.create")
    run.at(20.1, "server", type="response.created", response={"id": "r2"})
    run.at(20.2, "server", type="response.output_text.delta", response_id="r2", delta="b")
    run.at(20.3, "server", type="response.done", response={"id": "r2", "status": "completed"})

    assert [(400.0, 400.0), (200.0, 200.0)] == [
        (t["latency_ms"], t["user_wait_ms"]) for t in run.turns()
    ]


@pytest.mark.parametrize(
    ("create", "error", "refused"),
    [
        ({"event_id": "evt_1"}, {"event_id": "evt_1"}, True),
        ({}, {"code": "conversation_already_has_active_response"}, True),
        ({"event_id": "evt_1"}, {"event_id": "evt_other"}, False),
    ],
)
def test_a_refused_response_create_sets_no_start_mark(
    create: dict[str, Any], error: dict[str, Any], refused: bool
) -> None:
    """
    `response.create` at 5 s, then an `error` naming it (or, the create carrying no id,
    the first error): the response VAD starts at 20 s is timed from its speech end, not
    from the refused create. An error about another event leaves the create standing.
    """
    run = _Run()
    run.at(5.0, "client", type="response.create", **create)
    run.at(5.1, "server", type="error", error={"type": "invalid_request_error", **error})
    run.at(20.0, "server", type="input_audio_buffer.speech_stopped", audio_end_ms=900)
    run.at(20.1, "server", type="response.created", response={"id": "r1"})
    run.at(20.3, "server", type="response.output_text.delta", response_id="r1", delta="a")
    run.at(20.4, "server", type="response.done", response={"id": "r1", "status": "completed"})

    (turn,) = run.turns()
    expected = ("vad", 300.0) if refused else ("client", 15300.0)
    assert expected == (turn["trigger"], turn["latency_ms"])


def test_speech_transcript_and_its_cost_are_on_the_turn() -> None:
    """
    Turn detection with 300 ms padding and 500 ms silence; speech from 1000 to 2800 ms of
    audio: input 1800 ms, of which speech 1000 ms. The committed item's transcription
    (gpt-4o-mini-transcribe: 50 audio tokens in at $1.25/M, 10 text tokens out at $5/M
    = $0.0001125) completes before the audio is heard out: the turn carries the words
    (through the transcript policy) and that cost; the session's cost includes it once.
    """
    run = _Run()
    session = {
        "type": "realtime",
        "audio": {
            "input": {
                "turn_detection": {
                    "type": "server_vad",
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                },
                "transcription": {"model": "gpt-4o-mini-transcribe"},
            }
        },
    }
    run.at(1.0, "server", type="session.updated", session=session)
    run.at(2.0, "server", type="input_audio_buffer.speech_started", audio_start_ms=1000)
    run.at(4.0, "server", type="input_audio_buffer.speech_stopped", audio_end_ms=2800)
    run.at(4.0, "server", type="input_audio_buffer.committed", item_id="item_u1")
    run.response(4.1, "r1", audio_ms=1000)
    usage = {
        "type": "tokens",
        "input_tokens": 50,
        "output_tokens": 10,
        "total_tokens": 60,
        "input_token_details": {"audio_tokens": 50, "text_tokens": 0},
    }
    run.at(
        4.5,
        "server",
        type="conversation.item.input_audio_transcription.completed",
        item_id="item_u1",
        content_index=0,
        transcript="what's my balance",
        usage=usage,
    )
    totals = run.tracker.close(10.0)

    (turn,) = run.turns()
    assert (1800.0, 1000.0, 500) == (
        turn["input_audio_ms"],
        turn["speech_ms"],
        turn["silence_ms"],
    )
    assert ("<what's my balance>", 0.0001125) == (
        turn["input_transcript"],
        turn["transcription_cost_usd"],
    )
    assert 0.0001125 == totals["transcription_cost_usd"] == totals["cost_usd"]


def test_duration_usage_is_priced_per_minute() -> None:
    """
    A transcription session on gpt-realtime-whisper ($0.017 a minute): 30 s of audio
    cost $0.0085.
    """
    run = _Run(model="gpt-realtime-whisper", transcription=True)
    run.at(1.0, "server", type="input_audio_buffer.committed", item_id="item_1")
    run.at(
        1.4,
        "server",
        type="conversation.item.input_audio_transcription.completed",
        item_id="item_1",
        content_index=0,
        transcript="hello",
        usage={"type": "duration", "seconds": 30},
    )

    (turn,) = run.turns()
    assert 0.0085 == turn["cost_usd"]


def test_a_provider_billing_connection_time_is_priced_at_close() -> None:
    """
    xAI's voice API ($0.05 a minute of connection): a 150 s session costs $0.125, with
    no token usage at all.
    """
    run = _Run(model="grok-voice-think-fast-1.0")

    totals = run.tracker.close(200.0, duration_s=150.0)

    assert (0.125, 0.125) == (totals["cost_usd"], run.tracker.connection_cost_usd)


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-realtime-2025-08-28", "gpt-realtime"),
        ("gpt-realtime-2", "gpt-realtime-2"),
        ("gpt-realtime-2-2026-05-07", "gpt-realtime-2"),
        ("gpt-realtime-2.1-mini-2026-07-07", "gpt-realtime-2.1-mini"),
        ("gpt-realtime-mini-2025-12-15", "gpt-realtime-mini"),
        ("grok-voice-latest", "grok-voice"),
    ],
)
def test_a_dated_snapshot_takes_its_models_prices_not_a_longer_names(model: str, key: str) -> None:
    """
    `gpt-realtime-2025-08-28` is gpt-realtime's snapshot, not a gpt-realtime-2 model.
    """
    assert key == shipped_table().key(model)


def test_token_usage_of_a_model_priced_by_the_minute_is_not_costed() -> None:
    """
    Token usage given for a model that is billed by duration is not priced as zero.
    """
    usage = {"input_tokens": 10, "output_tokens": 5}

    assert None is cost(usage, shipped_table().prices("gpt-realtime-whisper"))


async def _open(make_proxy: ProxyFactory, fake: FakeUpstream) -> Any:
    fake.scripted = False
    proxy = await make_proxy()
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)  # session.created
    return ws, proxy


async def _until(ws: Any, kind: str) -> float:
    while True:
        msg = await ws.receive(timeout=5)
        if orjson.loads(msg.data)["type"] == kind:
            return time.monotonic()


async def _turns(sink: MemorySink, n: int) -> list[dict[str, Any]]:
    for _ in range(250):
        if len(turns := sink.records("realtime.turn")) >= n:
            return turns
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {n} realtime.turn records")


def _event(kind: str, **fields: Any) -> bytes:
    return orjson.dumps({"type": kind, **fields})


async def test_a_real_client_style_tool_turn_through_the_proxy(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    Audio at real time, VAD's speech end at 600 ms; the model calls a tool; the app takes
    250 ms and asks for the answer, whose 300 ms of audio the client plays out. The
    second turn's `user_wait_ms` is the client's own speech end → first answer audio, its
    `latency_ms` the client's `response.create` → first audio, and it is written once
    heard, not interrupted.
    """
    ws, proxy = await _open(make_proxy, fake)
    sent_at = []
    for _ in range(8):
        sent_at.append(time.monotonic())
        await ws.send_str(
            orjson.dumps({"type": "input_audio_buffer.append", "audio": _audio(100)}).decode()
        )
        await fake.next_frame()
        await asyncio.sleep(0.1)
    await fake.send(_event("input_audio_buffer.speech_started", audio_start_ms=100))
    await fake.send(_event("input_audio_buffer.speech_stopped", audio_end_ms=600))
    await fake.send(_event("response.created", response={"id": "r1"}))
    await fake.send(_event("response.function_call_arguments.delta", response_id="r1", delta="{}"))
    await fake.send(
        _event(
            "response.function_call_arguments.done",
            response_id="r1",
            call_id="c1",
            name="lookup",
            arguments="{}",
        )
    )
    await fake.send(_event("response.done", response={"id": "r1", "status": "completed"}))
    await _until(ws, "response.done")
    await asyncio.sleep(0.25)  # the app's tool
    item = {"type": "function_call_output", "call_id": "c1", "output": "{}"}
    await ws.send_str(orjson.dumps({"type": "conversation.item.create", "item": item}).decode())
    asked = time.monotonic()
    await ws.send_str('{"type":"response.create"}')
    await fake.next_frame()
    await fake.next_frame()
    await fake.send(_event("response.created", response={"id": "r2"}))
    await fake.send(
        _event("response.output_audio.delta", response_id="r2", item_id="i2", delta=_audio(300))
    )
    first_audio = await _until(ws, "response.output_audio.delta")
    await fake.send(_event("response.done", response={"id": "r2", "status": "completed"}))
    await _until(ws, "response.done")
    first, second = await _turns(sink, 2)  # the second once its 300 ms have played
    await ws.close()
    metrics = await (await proxy.get("/metrics")).text()

    assert first["user_wait_ms"] == first["latency_ms"] is not None
    assert abs((first_audio - sent_at[5]) * 1000 - second["user_wait_ms"]) <= TOLERANCE_MS, second
    assert abs((first_audio - asked) * 1000 - second["latency_ms"]) <= TOLERANCE_MS, second
    assert (False, 300.0) == (second["interrupted"], second["heard_ms"])
    assert "earshot_user_wait_seconds_count 2.0" in metrics


async def test_a_barge_in_after_the_answer_was_generated_is_an_interruption(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    All 2000 ms of the answer arrive at once and `response.done` follows; the user speaks
    up 400 ms into playing it (as the client measures). The turn is interrupted, heard
    for those 400 ms.
    """
    ws, _ = await _open(make_proxy, fake)
    await ws.send_str('{"type":"response.create"}')
    await fake.next_frame()
    await fake.send(_event("response.created", response={"id": "r1"}))
    await fake.send(
        _event("response.output_audio.delta", response_id="r1", item_id="i1", delta=_audio(2000))
    )
    first_audio = await _until(ws, "response.output_audio.delta")
    await fake.send(_event("response.done", response={"id": "r1", "status": "completed"}))
    await _until(ws, "response.done")
    await asyncio.sleep(max(0.0, 0.4 - (time.monotonic() - first_audio)))
    barged = time.monotonic()
    await fake.send(_event("input_audio_buffer.speech_started", audio_start_ms=5000))
    await _until(ws, "input_audio_buffer.speech_started")
    (turn,) = await _turns(sink, 1)
    await ws.close()

    assert turn["interrupted"] is True
    assert abs((barged - first_audio) * 1000 - turn["heard_ms"]) <= TOLERANCE_MS, turn
