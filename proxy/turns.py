"""
Turns: how long each user waited for the answer, where the agent was interrupted, how
long the app's tools took, and what each response cost (SPEC §4a).

A `TurnTracker` belongs to one session, beside its `Recorder`. The relay hands it each
decoded event with the monotonic time the frame was forwarded. It follows
`response.create`, `response.created`, the output deltas, `response.done`, VAD's
`speech_started`/`speech_stopped`, truncations, function calls and their outputs, and
the running total of appended input audio with a bounded record of when each append was
forwarded (the VAD start mark is when the audio at `speech_stopped`'s `audio_end_ms`
passed through). It writes `realtime.turn`, `realtime.tool` and
`realtime.interruption`, and the session's totals for `ws.close`.

Everything it keeps is bounded: at most `_MAX_OPEN` responses, `_MAX_CALLS` tool calls,
`_MAX_ITEMS` audio items and `_MAX_APPENDS` append marks (two fixed arrays, 4 KB), the
oldest dropped first.
"""

from __future__ import annotations

import array
import collections
import re
import statistics
from collections.abc import Callable
from typing import Any, Final

import attrs

from proxy.audio import base64_length
from proxy.pricing import PriceTable, cost, token_counts, usage_problems
from proxy.session_info import SessionInfo

_MAX_OPEN: Final = 8  # responses in progress at once
_MAX_CALLS: Final = 32  # function calls awaiting their output
_MAX_ITEMS: Final = 64  # assistant audio items, for a later truncation
_MAX_APPENDS: Final = 256  # append marks kept: 5 s of 20 ms appends, 4 KB
_MAX_LATENCIES: Final = 1024  # latencies kept for the session's p50
_MAX_ID: Final = 128  # characters of an id or a name kept (as many as are logged)


_UNSEEN: Final[Any] = object()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _str(value: object) -> str | None:
    """A string off the wire, kept at most as long as it is logged: an id or a name of
    200,000 characters costs what one of 128 does (SPEC §4a: bounded by bytes, not only
    by count). Two ids alike in their first 128 characters are one id here."""
    if type(value) is not str:
        return None
    return value if len(value) <= _MAX_ID else value[:_MAX_ID]


_COUNT_KEY: Final = re.compile(r"[a-z_]{1,40}")


def _token_counts_only(usage: object, depth: int = 0) -> Any:
    """`usage` as `response.done` gave it, but counts only: numbers, the objects that hold
    them and the usage's `type`, under plain field names (nothing else of the wire)."""
    if not isinstance(usage, dict) or depth > 3:
        return None
    out: dict[str, Any] = {}
    for key, value in usage.items():
        if not isinstance(key, str) or not _COUNT_KEY.fullmatch(key):
            continue
        if type(value) is int or type(value) is float:
            out[key] = value
        elif key == "type" and isinstance(value, str) and _COUNT_KEY.fullmatch(value):
            out[key] = value  # `tokens` or `duration` (transcription usage)
        elif isinstance(value, dict):
            inner = _token_counts_only(value, depth + 1)
            if inner:
                out[key] = inner
    return out


def _int(value: object) -> int | None:
    return value if type(value) is int else None


def _position(value: object) -> int | None:
    """An audio position (ms) from a peer: an integer from 0 to 2^53, else unknown."""
    return value if type(value) is int and 0 <= value <= 2**53 else None


class _AppendMarks:
    """When the input audio reached each position: the last `size` appends' (position in
    ms, forward time), in two fixed arrays made on the first append (4 KB at most)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._pos = array.array("d")
        self._time = array.array("d")
        self._n = 0  # appends marked so far

    def add(self, position_ms: float, now: float) -> None:
        if self._n < self._size:
            self._pos.append(position_ms)
            self._time.append(now)
        else:
            i = self._n % self._size
            self._pos[i] = position_ms
            self._time[i] = now
        self._n += 1

    def reached(self, position_ms: float) -> float | None:
        """When the audio first reached `position_ms`; None when that is older than the
        marks kept (or not reached yet)."""
        first = max(0, self._n - self._size)
        for k in range(first, self._n):
            i = k % self._size
            if self._pos[i] >= position_ms:
                # Reached before the oldest kept mark: that time is not known.
                return None if k == first and first > 0 else self._time[i]
        return None


@attrs.define
class _Turn:
    """One response in progress."""

    response_id: str
    trigger: str
    start: float | None  # the start mark (monotonic seconds)
    created: float
    input_audio_ms: float | None = None
    silence_ms: int | None = None
    first_output: float | None = None
    first_audio: float | None = None
    first_text: float | None = None
    output_audio_bytes: int = 0
    interrupted: bool = False
    tool_calls: list[dict[str, str]] = attrs.field(factory=list)


@attrs.define
class _Call:
    name: str | None
    response_id: str | None
    done: float


@attrs.define
class _Totals:
    turns: int = 0
    interruptions: int = 0
    tokens: dict[str, int] = attrs.field(factory=dict)
    usage: dict[str, int] = attrs.field(factory=dict)
    cost_usd: float = 0.0
    priced: bool = False
    latencies: collections.deque[float] = attrs.field(
        factory=lambda: collections.deque(maxlen=_MAX_LATENCIES)
    )


class TurnTracker:
    """Follows one session's turns; `write(event, fields)` takes each record."""

    def __init__(
        self,
        write: Callable[[str, dict[str, Any]], None],
        prices: PriceTable,
        *,
        info: SessionInfo | None = None,
        clean: Callable[[str], str] = lambda value: value,
        wall: Callable[[float], str] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self._write = write
        # Told of an exception a handler raised: reported, never the traffic's concern.
        self.on_error = on_error
        # Ids and names came off the wire: they reach a record only through `clean` (the
        # redactor's scrub-then-cut), as every other value does.
        self._clean = clean
        # The monotonic start mark as a wall-clock time, for a timeline drawn from the log.
        self._wall = wall
        # The session as followed (models, formats, turn detection): read, never written.
        self.info = info if info is not None else SessionInfo()
        self._prices = prices
        self._appended_ms = 0.0
        self._appends = _AppendMarks(_MAX_APPENDS)
        self._requested: float | None = None  # a response.create not yet answered
        self._vad: tuple[float, float | None] | None = None  # (start mark, input audio ms)
        self._speech_start_ms: int | None = None
        self._open: dict[str, _Turn] = {}
        self._calls: dict[str, _Call] = {}
        self._items: dict[str, tuple[str | None, int]] = {}  # item -> (response, audio bytes)
        self.totals = _Totals()

    # --- the per-frame entry ------------------------------------------------------------

    def observe(self, direction: str, event: Any, now: float) -> None:
        """One decoded event, forwarded at `now` (monotonic seconds). Never raises."""
        by_class = _BY_CLASS[direction]
        handler = by_class.get(type(event), _UNSEEN)
        if handler is _UNSEEN:
            handlers = _CLIENT_HANDLERS if direction == "client" else _SERVER_HANDLERS
            handler = handlers.get(getattr(type(event), "TYPE", ""))
            if len(by_class) < 256:  # event classes, and the unknown ones seen
                by_class[type(event)] = handler
        if handler is not None:
            try:
                handler(self, event, now)
            except Exception as exc:  # noqa: BLE001 (turns are observations: never the traffic)
                if self.on_error is not None:
                    self.on_error("turns.observe", exc)

    # --- client events ------------------------------------------------------------------

    def _append(self, event: Any, now: float) -> None:
        audio = event.audio
        if type(audio) is str:
            self._appended_ms += base64_length(audio) / self.info.input_bpms
            self._appends.add(self._appended_ms, now)

    def _response_create(self, event: Any, now: float) -> None:
        self._requested = now

    def _commit(self, event: Any, now: float) -> None:
        if self.info.transcription:  # a transcription's client trigger
            self._requested = now

    def _item_create(self, event: Any, now: float) -> None:
        item = event.item
        kind = getattr(type(item), "TYPE", None) or getattr(item, "type", None)
        if kind != "function_call_output":
            return
        call_id = _str(getattr(item, "call_id", None))
        call = self._calls.pop(call_id, None) if call_id else None
        if call is None or call_id is None:
            return
        output = getattr(item, "output", None)
        self._write(
            "realtime.tool",
            {
                "call_id": self._clean(call_id),
                "name": self._clean(call.name) if call.name else None,
                "response_id": self._clean(call.response_id) if call.response_id else None,
                "duration_ms": _ms(max(0.0, now - call.done)),
                "output_chars": len(output) if type(output) is str else 0,
            },
        )

    def _truncate(self, event: Any, now: float) -> None:
        item_id = _str(event.item_id)
        response_id, audio_bytes = self._items.get(item_id or "", (None, 0))
        self.totals.interruptions += 1
        self._write(
            "realtime.interruption",
            {
                "item_id": self._clean(item_id) if item_id else None,
                "response_id": self._clean(response_id) if response_id else None,
                "heard_ms": _position(event.audio_end_ms),
                "generated_ms": round(audio_bytes / self.info.output_bpms, 1)
                if audio_bytes
                else None,
            },
        )

    # --- server events ------------------------------------------------------------------

    def _speech_started(self, event: Any, now: float) -> None:
        self._speech_start_ms = _position(event.audio_start_ms)
        for turn in self._open.values():
            turn.interrupted = True

    def _speech_stopped(self, event: Any, now: float) -> None:
        end = _position(event.audio_end_ms)
        # When the audio at `audio_end_ms` passed through the proxy; where that is not
        # known (no audio through here, or older than the marks kept), speech_stopped's own.
        reached = self._appends.reached(end) if end is not None else None
        mark = reached if reached is not None else now
        heard = (
            float(end - self._speech_start_ms)
            if end is not None and self._speech_start_ms is not None
            else None
        )
        self._vad = (mark, heard)

    def _response_created(self, event: Any, now: float) -> None:
        self._open_turn(_str(getattr(event.response, "id", None)), now)

    def _committed(self, event: Any, now: float) -> None:
        if self.info.transcription:
            self._open_turn(_str(event.item_id), now)

    def _open_turn(self, response_id: str | None, now: float) -> None:
        """A response (or, transcribing, a committed item) begins: its trigger and mark."""
        if response_id is None:
            return
        if self._requested is not None:
            trigger, start, heard = "client", self._requested, None
            self._requested = None
        elif self._vad is not None:
            trigger, (start, heard) = "vad", self._vad
        else:
            trigger, start, heard = "vad", None, None
        self._vad = None
        if len(self._open) >= _MAX_OPEN:
            del self._open[next(iter(self._open))]
        self._open[response_id] = _Turn(
            response_id=response_id,
            trigger=trigger,
            start=start,
            created=now,
            input_audio_ms=heard,
            silence_ms=self.info.silence_ms if trigger == "vad" else None,
        )

    def _turn(self, event: Any) -> _Turn | None:
        response_id = _str(getattr(event, "response_id", None))
        return self._open.get(response_id) if response_id else None

    def _audio_delta(self, event: Any, now: float) -> None:
        turn = self._turn(event)
        delta = event.delta
        n = base64_length(delta) if type(delta) is str else 0
        item_id = _str(getattr(event, "item_id", None))
        if item_id is not None:
            response_id, before = self._items.pop(item_id, (turn.response_id if turn else None, 0))
            if len(self._items) >= _MAX_ITEMS:
                del self._items[next(iter(self._items))]
            self._items[item_id] = (response_id, before + n)
        if turn is not None:
            turn.output_audio_bytes += n
            if turn.first_audio is None:
                turn.first_audio = now
            if turn.first_output is None:
                turn.first_output = now

    def _text_delta(self, event: Any, now: float) -> None:
        turn = self._turn(event)
        if turn is not None:
            if turn.first_text is None:
                turn.first_text = now
            if turn.first_output is None:
                turn.first_output = now

    def _other_delta(self, event: Any, now: float) -> None:
        turn = self._turn(event)
        if turn is not None and turn.first_output is None:
            turn.first_output = now

    def _transcript_delta(self, event: Any, now: float) -> None:
        turn = self._open.get(_str(event.item_id) or "") if self.info.transcription else None
        if turn is not None and turn.first_text is None:
            turn.first_text = turn.first_output = now

    def _transcribed(self, event: Any, now: float) -> None:
        item_id = _str(event.item_id)
        turn = self._open.pop(item_id, None) if self.info.transcription and item_id else None
        if turn is None:
            return
        turn.first_output = now  # the completed transcript is the answer waited for
        usage = event.usage
        self._finish(
            turn,
            now,
            "completed",
            None,
            usage if isinstance(usage, dict) else None,
            model=self.info.transcription_model or self.info.model,
        )

    def _arguments_done(self, event: Any, now: float) -> None:
        call_id = _str(event.call_id)
        if call_id is None:
            return
        name = _str(event.name)
        turn = self._turn(event)
        if turn is not None and len(turn.tool_calls) < _MAX_CALLS:
            turn.tool_calls.append({"name": name or "", "call_id": call_id})
        if len(self._calls) >= _MAX_CALLS:
            del self._calls[next(iter(self._calls))]
        self._calls[call_id] = _Call(name, turn.response_id if turn else None, now)

    def _response_done(self, event: Any, now: float) -> None:
        response = event.response
        response_id = _str(getattr(response, "id", None))
        turn = self._open.pop(response_id, None) if response_id else None
        if turn is None:
            return
        status = _str(getattr(response, "status", None)) or "completed"
        details = getattr(response, "status_details", None)
        reason = _str(details.get("reason")) if isinstance(details, dict) else None
        if status == "cancelled" and reason in ("turn_detected", "client_cancelled"):
            turn.interrupted = True
        usage = getattr(response, "usage", None)
        self._finish(turn, now, status, reason, usage if isinstance(usage, dict) else None)

    # --- records ------------------------------------------------------------------------

    def _finish(
        self,
        turn: _Turn,
        now: float,
        status: str,
        reason: str | None,
        usage: dict[str, Any] | None,
        *,
        model: str | None = None,
    ) -> None:
        def since_start(t: float | None) -> float | None:
            if t is None or turn.start is None:
                return None
            return _ms(max(0.0, t - turn.start))

        latency = since_start(turn.first_output)
        prices = self._prices.prices(model or self.info.model)
        given = usage
        problems = usage_problems(usage) if usage is not None else []
        if problems:
            usage = None  # not costed, not summed: the record names what was wrong
        turn_cost = cost(usage, prices) if usage is not None else None
        totals = self.totals
        totals.turns += 1
        if latency is not None:
            totals.latencies.append(latency)
        if usage is not None:
            for key in ("input_tokens", "output_tokens", "total_tokens"):
                if type(usage.get(key)) is int:
                    totals.usage[key] = totals.usage.get(key, 0) + usage[key]
            for kind, n in token_counts(usage).items():
                totals.tokens[kind] = totals.tokens.get(kind, 0) + n
        if turn_cost is not None:
            totals.cost_usd += turn_cost
            totals.priced = True
        self._write(
            "realtime.turn",
            {
                "response_id": self._clean(turn.response_id),
                "status": self._clean(status),
                "reason": self._clean(reason) if reason else None,
                "trigger": turn.trigger,
                "latency_ms": latency,
                "first_audio_ms": since_start(turn.first_audio),
                "first_text_ms": since_start(turn.first_text),
                "response_ms": _ms(max(0.0, now - turn.created)),
                "output_audio_ms": round(turn.output_audio_bytes / self.info.output_bpms, 1),
                "input_audio_ms": turn.input_audio_ms,
                "silence_ms": turn.silence_ms,
                "interrupted": turn.interrupted,
                "tool_calls": [
                    {k: self._clean(v) for k, v in call.items()} for call in turn.tool_calls
                ],
                "usage": _token_counts_only(given),
                "cost_usd": turn_cost,
                **({"problems": problems} if problems else {}),
                **(
                    {"start_ts": self._wall(turn.start)}
                    if self._wall is not None and turn.start is not None
                    else {}
                ),
            },
        )

    def close(self, now: float) -> dict[str, Any]:
        """Write the responses that never ended (`unfinished`); the session's totals."""
        for turn in list(self._open.values()):
            self._finish(turn, now, "unfinished", None, None)
        self._open.clear()
        totals = self.totals
        latencies = list(totals.latencies)
        return {
            "turns": totals.turns,
            "interruptions": totals.interruptions,
            "usage": dict(totals.usage),
            "cost_usd": round(totals.cost_usd, 6) if totals.priced else None,
            "latency_ms": {
                "p50": round(statistics.median(latencies), 1) if latencies else None,
                "max": max(latencies) if latencies else None,
            },
        }


# Which method follows which event, by direction: one table for every session.
_Handler = Callable[[TurnTracker, Any, float], None]
_CLIENT_HANDLERS: Final[dict[str, _Handler]] = {
    "input_audio_buffer.append": TurnTracker._append,
    "input_audio_buffer.commit": TurnTracker._commit,
    "response.create": TurnTracker._response_create,
    "conversation.item.create": TurnTracker._item_create,
    "conversation.item.truncate": TurnTracker._truncate,
}
_SERVER_HANDLERS: Final[dict[str, _Handler]] = {
    "input_audio_buffer.speech_started": TurnTracker._speech_started,
    "input_audio_buffer.speech_stopped": TurnTracker._speech_stopped,
    "response.created": TurnTracker._response_created,
    "response.output_audio.delta": TurnTracker._audio_delta,
    "response.audio.delta": TurnTracker._audio_delta,
    "response.output_text.delta": TurnTracker._text_delta,
    "response.text.delta": TurnTracker._text_delta,
    "response.output_audio_transcript.delta": TurnTracker._text_delta,
    "response.audio_transcript.delta": TurnTracker._text_delta,
    "response.function_call_arguments.delta": TurnTracker._other_delta,
    "response.function_call_arguments.done": TurnTracker._arguments_done,
    "response.done": TurnTracker._response_done,
    "input_audio_buffer.committed": TurnTracker._committed,
    "conversation.item.input_audio_transcription.delta": TurnTracker._transcript_delta,
    "conversation.item.input_audio_transcription.completed": TurnTracker._transcribed,
}
# Handlers by (direction, event class), worked out on first sight: the per-frame lookup.
_BY_CLASS: Final[dict[str, dict[type, _Handler | None]]] = {"client": {}, "server": {}}
