"""
Turns (SPEC §4a): each time earshot records is checked against the same interval measured
at the test's client, against a fake upstream whose timing the test controls. The
tolerance is TOLERANCE_MS either way: client and proxy share one event loop here, so what
separates the two measurements is scheduling, which a busy two-core machine can stretch
to tens of milliseconds, not hundreds.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.pricing import shipped_table
from proxy.session_info import SessionInfo
from proxy.turns import TurnTracker
from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream
from tests.helpers import observe, recorded_sessions

TOLERANCE_MS = 80.0
AUDIO_100MS = base64.b64encode(bytes(4800)).decode()  # 24 kHz PCM16


def _event(kind: str, **fields: Any) -> bytes:
    return orjson.dumps({"type": kind, **fields})


async def _open(make_proxy: ProxyFactory, fake: FakeUpstream) -> Any:
    fake.scripted = False
    proxy = await make_proxy()
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)  # session.created
    return ws


async def _until(ws: Any, kind: str) -> float:
    """Receive until a frame of `kind`; when it arrived (monotonic seconds)."""
    while True:
        msg = await ws.receive(timeout=5)
        if orjson.loads(msg.data)["type"] == kind:
            return time.monotonic()


async def _record(sink: MemorySink, event: str) -> dict[str, Any]:
    for _ in range(250):
        if records := sink.records(event):
            return records[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {event} record")


def _close_to(measured_ms: float, recorded: float | None) -> bool:
    return recorded is not None and abs(recorded - measured_ms) <= TOLERANCE_MS


async def test_a_client_triggered_turn(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    `response.create` → 300 ms → `response.created` → 200 ms → first audio: latency is
    `response.create` to the first audio as the client saw it; response_ms is created to
    done; trigger `client`; usage and cost from `response.done`.
    """
    ws = await _open(make_proxy, fake)
    usage = {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10}

    sent = time.monotonic()
    await ws.send_str('{"type":"response.create"}')
    await fake.next_frame()
    await asyncio.sleep(0.3)
    await fake.send(_event("response.created", response={"id": "resp_1"}))
    await _until(ws, "response.created")
    created = time.monotonic()
    await asyncio.sleep(0.2)
    await fake.send(_event("response.output_audio.delta", response_id="resp_1", delta=AUDIO_100MS))
    first_audio = await _until(ws, "response.output_audio.delta")
    await fake.send(
        _event("response.done", response={"id": "resp_1", "status": "completed", "usage": usage})
    )
    done = await _until(ws, "response.done")
    turn = await _record(sink, "realtime.turn")
    await ws.close()

    assert ("resp_1", "client", "completed", usage) == (
        turn["response_id"],
        turn["trigger"],
        turn["status"],
        turn["usage"],
    )
    assert _close_to((first_audio - sent) * 1000, turn["latency_ms"]), turn
    assert turn["latency_ms"] == turn["first_audio_ms"]
    assert _close_to((done - created) * 1000, turn["response_ms"]), turn
    assert 100.0 == turn["output_audio_ms"]
    assert 0.00024 == turn["cost_usd"]  # 20 * 4 + 10 * 16 per million, counted as text


async def test_a_vad_turn_starts_where_the_audio_ended(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    Audio streamed at real time (100 ms appends, 100 ms apart); the server's VAD puts the
    end of speech at 600 ms and says so 500 ms later (its silence window): the start mark
    is when the append ending at 600 ms passed, not when `speech_stopped` came.
    """
    ws = await _open(make_proxy, fake)
    sent_at = []
    for _ in range(10):
        sent_at.append(time.monotonic())
        await ws.send_str(
            orjson.dumps({"type": "input_audio_buffer.append", "audio": AUDIO_100MS}).decode()
        )
        await fake.next_frame()
        await asyncio.sleep(0.1)
    await fake.send(_event("input_audio_buffer.speech_started", audio_start_ms=100, item_id="i1"))
    await fake.send(_event("input_audio_buffer.speech_stopped", audio_end_ms=600, item_id="i1"))
    await fake.send(_event("response.created", response={"id": "resp_v"}))
    await fake.send(_event("response.output_text.delta", response_id="resp_v", delta="Hi"))
    first_text = await _until(ws, "response.output_text.delta")
    await fake.send(_event("response.done", response={"id": "resp_v", "status": "completed"}))
    turn = await _record(sink, "realtime.turn")
    await ws.close()

    assert "vad" == turn["trigger"]
    # The sixth append carried audio 500-600 ms.
    assert _close_to((first_text - sent_at[5]) * 1000, turn["latency_ms"]), turn
    assert None is turn["first_audio_ms"]
    assert 500.0 == turn["input_audio_ms"]


async def test_a_tool_calls_time_is_the_apps(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    The app answers a function call 250 ms after its arguments were done: `realtime.tool`
    says so, and the turn lists the call.
    """
    ws = await _open(make_proxy, fake)
    await fake.send(_event("response.created", response={"id": "resp_t"}))
    await fake.send(
        _event(
            "response.function_call_arguments.done",
            response_id="resp_t",
            call_id="call_1",
            name="get_balance",
            arguments="{}",
        )
    )
    args_done = await _until(ws, "response.function_call_arguments.done")
    await fake.send(_event("response.done", response={"id": "resp_t", "status": "completed"}))
    await _until(ws, "response.done")
    await asyncio.sleep(0.25)
    output = {"type": "function_call_output", "call_id": "call_1", "output": '{"balance": 12}'}
    answered = time.monotonic()
    await ws.send_str(orjson.dumps({"type": "conversation.item.create", "item": output}).decode())
    await fake.next_frame()
    tool = await _record(sink, "realtime.tool")
    turn = sink.records("realtime.turn")[-1]
    await ws.close()

    assert ("call_1", "get_balance", "resp_t", 15) == (
        tool["call_id"],
        tool["name"],
        tool["response_id"],
        tool["output_chars"],
    )
    assert _close_to((answered - args_done) * 1000, tool["duration_ms"]), tool
    assert [{"name": "get_balance", "call_id": "call_1"}] == turn["tool_calls"]


async def test_a_truncation_says_what_was_heard_of_what_was_generated(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    One second of assistant audio, truncated by the client at 400 ms: an interruption
    record with heard 400 ms of 1000 ms generated, for that item and response.
    """
    ws = await _open(make_proxy, fake)
    await fake.send(_event("response.created", response={"id": "resp_a"}))
    for _ in range(10):
        await fake.send(
            _event(
                "response.output_audio.delta",
                response_id="resp_a",
                item_id="item_a",
                delta=AUDIO_100MS,
            )
        )
    await fake.send(_event("response.done", response={"id": "resp_a", "status": "completed"}))
    await _until(ws, "response.done")

    await ws.send_str(
        '{"type":"conversation.item.truncate","item_id":"item_a","content_index":0,"audio_end_ms":400}'
    )
    await fake.next_frame()
    interruption = await _record(sink, "realtime.interruption")
    await ws.close()

    assert {
        "item_id": "item_a",
        "response_id": "resp_a",
        "heard_ms": 400,
        "generated_ms": 1000.0,
    } == {k: interruption[k] for k in ("item_id", "response_id", "heard_ms", "generated_ms")}


async def test_a_barge_in_marks_the_turn_interrupted(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    The user speaks while the response runs and the server cancels it (`turn_detected`):
    the turn is interrupted, with that status and reason.
    """
    ws = await _open(make_proxy, fake)
    await fake.send(_event("response.created", response={"id": "resp_b"}))
    await fake.send(_event("input_audio_buffer.speech_started", audio_start_ms=0))
    await fake.send(
        _event(
            "response.done",
            response={
                "id": "resp_b",
                "status": "cancelled",
                "status_details": {"reason": "turn_detected"},
            },
        )
    )
    turn = await _record(sink, "realtime.turn")
    await ws.close()

    assert ("cancelled", "turn_detected", True) == (
        turn["status"],
        turn["reason"],
        turn["interrupted"],
    )


async def test_a_response_still_running_at_close_is_unfinished(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    The client leaves while a response runs: its turn is written `unfinished`, and
    `ws.close` carries the session's totals.
    """
    ws = await _open(make_proxy, fake)
    await fake.send(_event("response.created", response={"id": "resp_u"}))
    await _until(ws, "response.created")

    await ws.close()
    close = await _record(sink, "ws.close")
    turn = sink.records("realtime.turn")[-1]

    assert ("resp_u", "unfinished") == (turn["response_id"], turn["status"])
    assert (1, 0, None) == (close["turns"], close["interruptions"], close["cost_usd"])


def test_recorded_sessions_give_turns_with_the_recordings_usage() -> None:
    """
    Replayed through a tracker, each real recorded session gives one turn per
    `response.done`, whose usage is the recording's, priced as gpt-realtime.
    """
    import protocol

    for name, frames in recorded_sessions():
        records: list[tuple[str, dict[str, Any]]] = []
        tracker = TurnTracker(
            lambda r, into=records: into.append((r.EVENT, r.fields())), shipped_table()
        )
        expected = []
        for i, (direction, frame) in enumerate(frames):
            event = protocol.decode(frame, direction)  # type: ignore[arg-type]
            observe(tracker, direction, event, float(i))
            obj = orjson.loads(frame)
            if obj["type"] == "response.done":
                expected.append(obj["response"]["usage"])
        tracker.close(float(len(frames)))

        turns = [f for e, f in records if e == "realtime.turn"]
        assert expected == [t["usage"] for t in turns], name
        assert all(t["cost_usd"] and t["cost_usd"] > 0 for t in turns), name


TURN_EVENTS = st.sampled_from(
    [
        ("client", {"type": "response.create"}),
        ("client", {"type": "input_audio_buffer.append", "audio": "AAAA"}),
        ("client", {"type": "conversation.item.truncate", "item_id": "i1", "audio_end_ms": 5}),
        (
            "client",
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": "c1", "output": "x"},
            },
        ),
        ("server", {"type": "response.created", "response": {"id": "r1"}}),
        ("server", {"type": "response.created", "response": {"id": "r2"}}),
        (
            "server",
            {
                "type": "response.output_audio.delta",
                "response_id": "r1",
                "item_id": "i1",
                "delta": "AAAA",
            },
        ),
        ("server", {"type": "response.output_text.delta", "response_id": "r2", "delta": "x"}),
        (
            "server",
            {
                "type": "response.function_call_arguments.done",
                "response_id": "r1",
                "call_id": "c1",
                "name": "f",
            },
        ),
        ("server", {"type": "response.done", "response": {"id": "r1", "status": "completed"}}),
        ("server", {"type": "response.done", "response": {"id": "zz"}}),
        ("server", {"type": "input_audio_buffer.speech_started", "audio_start_ms": 3}),
        ("server", {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 9}),
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(TURN_EVENTS, st.floats(0, 0.5)), max_size=200))
def test_any_interleaving_never_raises_grows_or_goes_negative(steps: list[Any]) -> None:
    """
    Turn events in any order — duplicated, out of order, without `response.created`,
    with unknown ids — never raise, never keep more than the bounds, and never give a
    negative duration.
    """
    import protocol

    records: list[tuple[str, dict[str, Any]]] = []
    tracker = TurnTracker(lambda r: records.append((r.EVENT, r.fields())), shipped_table())
    now = 0.0
    for (direction, obj), gap in steps:
        now += gap
        observe(tracker, direction, protocol.decode(orjson.dumps(obj), direction), now)
        assert len(tracker._open) <= 8
        assert len(tracker._calls) <= 32
        assert len(tracker._items) <= 64
    tracker.close(now)

    for _, fields in records:
        for key in ("latency_ms", "first_audio_ms", "first_text_ms", "response_ms", "duration_ms"):
            value = fields.get(key)
            assert value is None or value >= 0, (key, fields)


async def test_a_transcription_session_has_a_turn_per_committed_item(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    `intent=transcription`: the client commits its audio; the item's turn runs from the
    commit to the completed transcript (`latency_ms`), its first delta is `first_text_ms`,
    its usage is the completed event's, priced as the session's transcription model.
    """
    fake.scripted = fake.greet = False
    proxy = await make_proxy()
    ws = await proxy.ws_connect("/v1/realtime?intent=transcription")
    config = {
        "type": "transcription",
        "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}},
    }
    await fake.send(_event("session.created", session={"id": "sess_t", **config}))
    await _until(ws, "session.created")
    usage = {
        "type": "tokens",
        "input_tokens": 40,
        "output_tokens": 10,
        "input_token_details": {"audio_tokens": 40},
        "output_token_details": {"text_tokens": 10},
    }

    committed = time.monotonic()
    await ws.send_str('{"type":"input_audio_buffer.commit"}')
    await fake.next_frame()
    await fake.send(_event("input_audio_buffer.committed", item_id="item_t"))
    await asyncio.sleep(0.2)
    await fake.send(
        _event("conversation.item.input_audio_transcription.delta", item_id="item_t", delta="Hel")
    )
    first = await _until(ws, "conversation.item.input_audio_transcription.delta")
    await asyncio.sleep(0.1)
    await fake.send(
        _event(
            "conversation.item.input_audio_transcription.completed",
            item_id="item_t",
            transcript="Hello",
            usage=usage,
        )
    )
    done = await _until(ws, "conversation.item.input_audio_transcription.completed")
    turn = await _record(sink, "realtime.turn")
    await ws.close()

    assert ("item_t", "client", usage) == (turn["response_id"], turn["trigger"], turn["usage"])
    assert _close_to((done - committed) * 1000, turn["latency_ms"]), turn
    assert _close_to((first - committed) * 1000, turn["first_text_ms"]), turn
    assert 0.0002 == turn["cost_usd"]  # 40 * 2.50 + 10 * 10.00 per million


async def test_the_translation_socket_has_no_turns(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    The translation socket has no responses: no turn records, no totals on `ws.close`.
    """
    fake.scripted = False
    proxy = await make_proxy()
    ws = await proxy.ws_connect("/v1/realtime/translations?model=gpt-realtime-translate")
    await ws.receive(timeout=5)
    await fake.send(_event("response.created", response={"id": "r"}))
    await ws.receive(timeout=5)
    await ws.close()
    close = await _record(sink, "ws.close")

    assert [] == sink.records("realtime.turn")
    assert "turns" not in close


def test_turn_records_carry_ids_only_through_the_redactor() -> None:
    """
    Ids and names in turn, tool and interruption records came off the wire: a key put in
    one is scrubbed, and a usage object keeps its counts only.
    """
    import protocol
    from proxy.redact import Policy, Redactor

    key = "sk-proj-HIDDENinANid0123456789abcdef"
    redactor = Redactor(Policy())
    records: list[tuple[str, dict[str, Any]]] = []
    tracker = TurnTracker(
        lambda r: records.append((r.EVENT, r.fields())),
        shipped_table(),
        clean=lambda v: redactor.cut(v, 128),
    )
    frames = [
        ("server", {"type": "response.created", "response": {"id": f"resp_{key}"}}),
        (
            "server",
            {
                "type": "response.function_call_arguments.done",
                "response_id": f"resp_{key}",
                "call_id": f"call_{key}",
                "name": key,
            },
        ),
        (
            "server",
            {
                "type": "response.output_audio.delta",
                "response_id": f"resp_{key}",
                "item_id": f"item_{key}",
                "delta": "AAAA",
            },
        ),
        (
            "server",
            {
                "type": "response.done",
                "response": {
                    "id": f"resp_{key}",
                    "status": key,
                    "usage": {"input_tokens": 3, "note": key, key: 1},
                },
            },
        ),
        (
            "client",
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": f"call_{key}", "output": "x"},
            },
        ),
        (
            "client",
            {"type": "conversation.item.truncate", "item_id": f"item_{key}", "audio_end_ms": 1},
        ),
    ]
    for i, (direction, obj) in enumerate(frames):
        observe(tracker, direction, protocol.decode(orjson.dumps(obj), direction), float(i))  # type: ignore[arg-type]

    text = orjson.dumps(records).decode()
    assert ["realtime.turn", "realtime.tool", "realtime.interruption"] == [e for e, _ in records]
    assert key[8:20] not in text
    assert {"input_tokens": 3} == records[0][1]["usage"]


def test_an_audio_position_older_than_the_marks_kept_falls_back_to_speech_stopped() -> None:
    """
    The tracker keeps the last 256 append marks (4 KB): a `speech_stopped` whose
    `audio_end_ms` is older than those takes its own forwarding time as the start mark;
    one inside them takes the append's.
    """
    import protocol

    def run(end_ms: int) -> float:
        records: list[tuple[str, dict[str, Any]]] = []
        tracker = TurnTracker(lambda r: records.append((r.EVENT, r.fields())), shipped_table())
        append = protocol.decode(_event("input_audio_buffer.append", audio=AUDIO_100MS), "client")
        for i in range(300):  # 30 s of audio, one append a second
            observe(tracker, "client", append, float(i))
        for obj, t in (
            ({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end_ms}, 1000.0),
            ({"type": "response.created", "response": {"id": "r"}}, 1000.0),
            ({"type": "response.output_text.delta", "response_id": "r", "delta": "x"}, 1001.0),
            ({"type": "response.done", "response": {"id": "r"}}, 1002.0),
        ):
            observe(tracker, "server", protocol.decode(orjson.dumps(obj), "server"), t)
        return records[-1][1]["latency_ms"]  # type: ignore[no-any-return]

    assert 1000.0 == run(1_000)  # audio 0.9-1.0 s, long dropped: speech_stopped at 1000 s
    assert 1001000.0 - 299_000.0 == run(29_950)  # the last append, forwarded at 299 s


def _drive(
    frames: list[tuple[str, dict[str, Any]]], model: str = "gpt-realtime"
) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """Feed decoded frames to a tracker; its records and its totals at close."""
    import protocol

    records: list[tuple[str, dict[str, Any]]] = []
    tracker = TurnTracker(
        lambda r: records.append((r.EVENT, r.fields())),
        shipped_table(),
        info=SessionInfo(model=model),
    )
    for direction, frame in frames:
        observe(tracker, direction, protocol.decode(orjson.dumps(frame), direction), 1.0)  # type: ignore[arg-type]
    return records, tracker.close(2.0)


def _response(rid: str, usage: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("server", {"type": "response.created", "response": {"id": rid}}),
        (
            "server",
            {
                "type": "response.done",
                "response": {"id": rid, "status": "completed", "usage": usage},
            },
        ),
    ]


def test_peer_figures_are_checked_before_they_are_summed_or_priced() -> None:
    """
    Two `response.done` with `total_tokens` 2^64-1, one with 10^15 tokens, one with a
    negative count and one with a fraction: each turn says what was wrong (`problems`),
    has no cost, and adds nothing to the session's sums; the honest turn is priced and
    summed as before (SPEC §4a).
    """
    bad = [
        {"total_tokens": 2**64 - 1, "input_tokens": 1},
        {"total_tokens": 2**64 - 1, "input_tokens": 1},
        {
            "input_tokens": 10**15,
            "output_tokens": 1,
            "input_token_details": {"text_tokens": 10**15},
        },
        {"input_tokens": -5, "output_tokens": 1},
        {"input_tokens": 2.5, "output_tokens": 1},
    ]
    good = {
        "input_tokens": 100,
        "output_tokens": 10,
        "total_tokens": 110,
        "input_token_details": {"text_tokens": 100},
        "output_token_details": {"text_tokens": 10},
    }
    frames = [f for i, usage in enumerate(bad) for f in _response(f"resp_bad{i}", usage)]
    frames += _response("resp_good", good)
    records, totals = _drive(frames)

    turns = [fields for event, fields in records if event == "realtime.turn"]
    assert [True] * 5 + [False] == ["problems" in t for t in turns]
    assert [None] * 5 == [t["cost_usd"] for t in turns[:5]]
    assert turns[5]["cost_usd"] is not None
    assert turns[5]["cost_usd"] > 0
    assert {"input_tokens": 100, "output_tokens": 10, "total_tokens": 110} == totals["usage"]
    assert 0 < totals["cost_usd"] < 1


def test_negative_audio_positions_are_unknown_not_negative_durations() -> None:
    """
    A truncation at a negative position says nothing was known of what was heard.
    """
    records, _ = _drive(
        [
            ("server", {"type": "response.created", "response": {"id": "r1"}}),
            (
                "server",
                {
                    "type": "response.output_audio.delta",
                    "response_id": "r1",
                    "item_id": "i1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": AUDIO_100MS,
                },
            ),
            (
                "client",
                {
                    "type": "conversation.item.truncate",
                    "item_id": "i1",
                    "content_index": 0,
                    "audio_end_ms": -500,
                },
            ),
        ]
    )
    (interruption,) = [f for e, f in records if e == "realtime.interruption"]
    assert interruption["heard_ms"] is None


def test_output_tokens_without_details_are_text() -> None:
    """
    Usage that gives `output_tokens` without `output_token_details` (transcription does)
    prices them as text output, not as nothing.
    """
    from proxy.pricing import cost, token_counts

    usage = {"input_tokens": 100, "output_tokens": 50, "input_token_details": {"audio_tokens": 100}}
    assert 50 == token_counts(usage)["output_text"]
    prices = shipped_table().prices("gpt-realtime")
    assert prices is not None
    assert cost(usage, prices) == round(
        (100 * prices.audio_input + 50 * prices.text_output) * 1e-6, 6
    )
