"""
Records per SPEC §4 and the event policy: full events, summaries folded and flushed at
natural boundaries, metadata-only undecodable frames, session ids bound once known.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from proxy.log import make_logger
from proxy.records import EventPolicy, Recorder
from proxy.redact import Policy, Redactor
from tests.conftest import MemorySink
from tests.helpers import session_of, take

AUDIO = base64.b64encode(bytes(4800)).decode()  # 100 ms at 24 kHz PCM16
DEFAULT_EVENTS = {"default": "full", "input_audio_buffer.append": "summary", "*.delta": "summary"}


def _recorder(events: dict[str, str] | None = None, **kw: Any) -> tuple[Recorder, MemorySink]:
    sink = MemorySink()
    recorder = Recorder(
        make_logger(sink), Redactor(Policy()), EventPolicy(events or DEFAULT_EVENTS), **kw
    )
    return recorder, sink


def _send(recorder: Recorder, direction: str, **event: Any) -> None:
    take(recorder, direction, orjson.dumps(event))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event_type", "mode"),
    [
        ("input_audio_buffer.append", "summary"),
        ("response.output_text.delta", "summary"),
        ("response.output_text.done", "full"),
        ("session.update", "full"),
    ],
)
def test_event_policy_exact_glob_and_default(event_type: str, mode: str) -> None:
    """
    Exact names win, then globs, then the default.
    """
    assert mode == EventPolicy(DEFAULT_EVENTS).mode(event_type)


def test_policy_off_writes_nothing() -> None:
    """
    An event type set to `off` gets no record (it is still counted).
    """
    recorder, sink = _recorder({"default": "full", "rate_limits.updated": "off"})

    _send(recorder, "server", type="rate_limits.updated", rate_limits=[])

    assert [] == sink.records()
    assert 1 == session_of(recorder).counts["server"].frames


def test_full_record_has_the_spec_fields() -> None:
    """
    A `realtime.event` has direction, type, size, payload and event_id.
    """
    recorder, sink = _recorder()
    frame = b'{"type":"conversation.item.delete","item_id":"item_1","event_id":"ev_9"}'

    take(recorder, "client", frame)

    (record,) = sink.records()
    assert {
        "event": "realtime.event",
        "direction": "client",
        "type": "conversation.item.delete",
        "size": len(frame),
        "event_id": "ev_9",
        "payload": {"type": "conversation.item.delete", "item_id": "item_1", "event_id": "ev_9"},
    }.items() <= record.items()


def test_audio_appends_fold_until_commit() -> None:
    """
    Appends are one summary, written when the client commits, before the commit's record.
    """
    recorder, sink = _recorder()
    for _ in range(10):
        _send(recorder, "client", type="input_audio_buffer.append", audio=AUDIO)
    assert [] == sink.records()

    _send(recorder, "client", type="input_audio_buffer.commit")

    summary, commit = sink.records()
    assert ("realtime.summary", "realtime.event") == (summary["event"], commit["event"])
    assert {
        "frames": 10,
        "bytes": 48000,
        "ms": 1000.0,
        "type": "input_audio_buffer.append",
    }.items() <= summary.items()


@pytest.mark.parametrize(
    "boundary", ["input_audio_buffer.speech_stopped", "input_audio_buffer.committed"]
)
def test_server_vad_boundaries_flush_client_audio(boundary: str) -> None:
    """
    With server VAD the client never commits: speech stopped or committed flushes.
    """
    recorder, sink = _recorder()
    _send(recorder, "client", type="input_audio_buffer.append", audio=AUDIO)

    _send(recorder, "server", type=boundary, item_id="item_1")

    assert ["realtime.summary", "realtime.event"] == [r["event"] for r in sink.records()]


def test_deltas_fold_per_item_until_their_done() -> None:
    """
    Deltas fold per item and type; the matching `.done` flushes only its own summary.
    """
    recorder, sink = _recorder()
    ids = {"response_id": "resp_1", "content_index": 0, "output_index": 0}
    for item in ("item_a", "item_b"):
        _send(
            recorder,
            "server",
            type="response.output_text.delta",
            item_id=item,
            delta="Hello",
            **ids,
        )
        _send(
            recorder, "server", type="response.output_text.delta", item_id=item, delta=" you", **ids
        )

    _send(
        recorder,
        "server",
        type="response.output_text.done",
        item_id="item_a",
        text="Hello you",
        **ids,
    )

    summary, done = sink.records()
    assert {
        "item_id": "item_a",
        "response_id": "resp_1",
        "frames": 2,
        "chars": 9,
    }.items() <= summary.items()
    assert "response.output_text.done" == done["type"]
    _send(recorder, "server", type="response.done", response={"id": "resp_1"})
    assert "item_b" == sink.records("realtime.summary")[-1]["item_id"]


def test_close_flushes_open_summaries() -> None:
    """
    Summaries still open at connection close are written.
    """
    recorder, sink = _recorder()
    _send(
        recorder,
        "server",
        type="response.output_audio.delta",
        delta=AUDIO,
        item_id="i",
        response_id="r",
    )

    recorder.close()

    (summary,) = sink.records("realtime.summary")
    assert 100.0 == summary["ms"]


def test_a_delta_without_its_optional_text_is_folded_as_a_frame() -> None:
    """
    A transcription delta may leave out `delta`: the frame is counted, with no characters,
    not turned into an internal-error record.
    """
    recorder, sink = _recorder()
    _send(
        recorder,
        "server",
        type="conversation.item.input_audio_transcription.delta",
        item_id="item_a",
        content_index=0,
    )

    recorder.close()

    (summary,) = sink.records("realtime.summary")
    assert (1, "conversation.item.input_audio_transcription.delta") == (
        summary["frames"],
        summary["type"],
    )
    assert [] == sink.records("realtime.undecodable")


def test_summaries_flush_at_least_every_interval() -> None:
    """
    A stream with no boundary is still summarised every `summary_interval` seconds.
    """
    clock = [100.0]
    recorder, sink = _recorder(summary_interval=5.0, clock=lambda: clock[0])
    _send(recorder, "client", type="input_audio_buffer.append", audio=AUDIO)
    clock[0] = 104.9
    _send(recorder, "client", type="input_audio_buffer.append", audio=AUDIO)
    assert [] == sink.records("realtime.summary")
    clock[0] = 105.0

    _send(recorder, "client", type="input_audio_buffer.append", audio=AUDIO)

    (summary,) = sink.records("realtime.summary")
    assert 3 == summary["frames"]


def test_stale_summaries_are_flushed_without_new_frames() -> None:
    """
    A summary older than the interval is written by `flush_stale`, with no frame to fold.
    """
    clock = [100.0]
    recorder, sink = _recorder(summary_interval=5.0, clock=lambda: clock[0])
    _send(recorder, "client", type="input_audio_buffer.append", audio=AUDIO)

    clock[0] = 104.9
    recorder.flush_stale()
    assert [] == sink.records("realtime.summary")
    clock[0] = 105.0
    recorder.flush_stale()

    (summary,) = sink.records("realtime.summary")
    assert 1 == summary["frames"]


def test_summary_count_is_bounded() -> None:
    """
    Many distinct items cannot grow the set of open summaries without bound.
    """
    recorder, sink = _recorder()
    for i in range(500):
        _send(recorder, "server", type="response.output_text.delta", item_id=f"item_{i}", delta="x")

    assert 64 >= len(recorder.summaries)
    assert 500 - len(recorder.summaries) == len(sink.records("realtime.summary"))


def test_session_id_is_bound_once_known() -> None:
    """
    Records after `session.created` carry its id; records before do not.
    """
    recorder, sink = _recorder()
    _send(recorder, "client", type="input_audio_buffer.clear")

    _send(recorder, "server", type="session.created", session={"id": "sess_42"})
    _send(recorder, "client", type="input_audio_buffer.clear")

    assert [None, "sess_42", "sess_42"] == [r.get("session") for r in sink.records()]


def test_undecodable_is_metadata_only() -> None:
    """
    An undecodable frame logs size, a hash prefix and the reason, nothing of its content.
    """
    recorder, sink = _recorder()
    frame = b'{"type":"input_audio_buffer.append","audio":12345}'

    take(recorder, "client", frame)

    (record,) = sink.records()
    assert {
        "event": "realtime.undecodable",
        "direction": "client",
        "size": len(frame),
        "reason": "$.audio: expected str, got int",
    }.items() <= record.items()
    assert 16 == len(record["sha256"])
    assert "12345" not in sink.text()


def test_unknown_event_is_logged_scrubbed_and_marked() -> None:
    """
    An unknown event type is a full record marked `unknown`, its fields scrubbed.
    """
    recorder, sink = _recorder()

    _send(recorder, "server", type="response.brand_new", secret="s3cr3t-value", n=1)

    (record,) = sink.records()
    assert record["unknown"] is True
    assert {"type": "response.brand_new", "n": 1} == {
        k: v for k, v in record["payload"].items() if k != "secret"
    }
    assert "s3cr3t-value" not in sink.text()


def test_validation_problems_are_logged() -> None:
    """
    A decodable event that breaks a spec rule is logged with its problems.
    """
    recorder, sink = _recorder()

    _send(
        recorder,
        "client",
        type="conversation.item.create",
        item={
            "type": "message",
            "role": "system",
            "content": [{"type": "input_image", "image_url": "https://x/y.png"}],
        },
    )

    (record,) = sink.records()
    assert ["$.item.content[0].type: not allowed for role system (allowed: input_text)"] == record[
        "problems"
    ]


def test_transcription_delta_summaries_are_written_when_their_item_completes() -> None:
    """
    Input transcription streams end with `.completed` (not `.done`): its delta summary is
    written then, before the completed event's own record, not at the next flush or the
    close (a timeline drew one long text bar).
    """
    from proxy.log import make_logger
    from proxy.records import EventPolicy, Recorder
    from proxy.redact import Policy, Redactor
    from tests.conftest import MemorySink

    sink = MemorySink()
    recorder = Recorder(
        make_logger(sink),
        Redactor(Policy()),
        EventPolicy({"default": "full", "*.delta": "summary"}),
        summary_interval=1e9,
    )
    for word in ("my ", "name ", "is ann"):
        take(
            recorder,
            "server",
            orjson.dumps(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": "item_1",
                    "content_index": 0,
                    "delta": word,
                }
            ),
        )
    take(
        recorder,
        "server",
        orjson.dumps(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": "item_1",
                "content_index": 0,
                "transcript": "my name is ann",
            }
        ),
    )

    events = [(r["event"], r.get("type")) for r in sink.records()]
    assert [
        ("realtime.summary", "conversation.item.input_audio_transcription.delta"),
        ("realtime.event", "conversation.item.input_audio_transcription.completed"),
    ] == events
    assert 3 == sink.records("realtime.summary")[0]["frames"]
