"""
Turns: how long each user waited for the answer, what of it they heard, how long the
app's tools took, and what each response cost (SPEC §4a).

A `TurnTracker` belongs to one session. The session hands it each decoded event with the
time the frame was forwarded, after the send; the session's `SessionInfo` says what the
session is (models, formats, turn detection). Handlers are found by event class. A turn
opens at `response.created` (its start mark: the client's `response.create`, or where the
audio at VAD's `audio_end_ms` passed through), and its record is written when it is over
for the user: at `response.done` when it has no audio; else once its audio has played
(its first delta's forwarding + its duration), or when it is cut (a truncate of its item,
a `speech_started`, a `response.cancel`), or when the session ends. `tick` writes the
turns whose audio has played though no frame has come.

Everything it keeps is bounded: at most `_MAX_OPEN` responses in progress and as many
playing, `_MAX_CALLS` tool calls, `_MAX_ITEMS` audio items, 16 input
transcripts and `_MAX_APPENDS` append marks (4 KB), the oldest dropped first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import attrs

import protocol
from proxy.audio import base64_length
from proxy.pricing import PriceTable
from proxy.session_info import SessionInfo
from proxy.turn_records import (
    AppendMarks,
    InterruptionRecord,
    Record,
    ToolRecord,
    Turn,
    TurnWriter,
    ms,
    pop_oldest,
)

_MAX_OPEN: Final = 8  # responses in progress at once (and as many still playing)
_MAX_CALLS: Final = 32  # function calls awaiting their output
_MAX_ITEMS: Final = 64  # assistant audio items, for a later truncation
_MAX_APPENDS: Final = 256  # append marks kept: 5 s of 20 ms appends, 4 KB
_MAX_ID: Final = 128  # characters of an id or a name kept (as many as are logged)


def _str(value: object) -> str | None:
    """A string off the wire, kept at most as long as it is logged: an id or a name of
    200,000 characters costs what one of 128 does (SPEC §4a: bounded by bytes, not only
    by count). Two ids alike in their first 128 characters are one id here."""
    if type(value) is not str:
        return None
    return value if len(value) <= _MAX_ID else value[:_MAX_ID]


def _position(value: object) -> int | None:
    """An audio position (ms) from a peer: an integer from 0 to 2^53, else unknown."""
    return value if type(value) is int and 0 <= value <= 2**53 else None


@attrs.define
class _Call:
    name: str | None
    response_id: str | None
    done: float


@attrs.define
class _Request:
    """A `response.create` not answered yet."""

    at: float
    event_id: str | None
    after_tool: bool  # it follows a `function_call_output`: the same user turn


class TurnTracker:
    """Follows one session's turns; `write(record)` takes each record."""

    def __init__(
        self,
        write: Callable[[Record], None],
        prices: PriceTable,
        *,
        info: SessionInfo | None = None,
        clean: Callable[[str], str] = lambda value: value,
        transcript: Callable[[str], Any] = lambda value: value,
        wall: Callable[[float], str] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self._write = write
        # Told of an exception a handler raised: reported, never the traffic's concern.
        self.on_error = on_error
        # Ids and names came off the wire: they reach a record only through `clean` (the
        # redactor's scrub-then-cut); the user's words through `transcript` (the text
        # policy for transcripts, and personal-data masking). `wall` gives the monotonic
        # start mark as a wall-clock time, for a timeline drawn from the log.
        self._clean = clean
        self.info = info if info is not None else SessionInfo()
        self._prices = prices
        self._writer = TurnWriter(self.info, prices, clean=clean, transcript=transcript, wall=wall)
        self.totals = self._writer.totals
        self._appended_ms = 0.0
        self._appends = AppendMarks(_MAX_APPENDS)
        self._requested: _Request | None = None
        self._tool_output = False  # a function_call_output since the last response.create
        self._vad: tuple[float, float | None] | None = None  # (start mark, input audio ms)
        self._speech_start_ms: int | None = None
        self._user_start: float | None = None
        self._committed: str | None = None  # an input item committed, for the next turn
        self._open: dict[str, Turn] = {}
        self._playing: dict[str, Turn] = {}  # done, the user still listening
        self._calls: dict[str, _Call] = {}
        self._items: dict[str, tuple[str | None, int]] = {}  # item -> (response, audio bytes)
        self.connection_cost_usd: float | None = None  # priced at close, where billed so

    # --- the per-frame entry ------------------------------------------------------------

    def observe(self, direction: str, event: Any, now: float) -> None:
        """One decoded event, forwarded at `now` (monotonic seconds). Never raises."""
        try:
            if self._playing:
                self._heard_out(now)
            handler = _HANDLERS.get(type(event))
            if handler is not None:
                handler(self, event, now)
        except Exception as exc:  # noqa: BLE001 (turns are observations: never the traffic)
            if self.on_error is not None:
                self.on_error("turns.observe", exc)

    def tick(self, now: float) -> None:
        """Write the turns whose audio has been heard out by `now` (the app's clock calls
        this every second: a turn is written on time though no frame comes)."""
        if self._playing:
            self._heard_out(now)

    # --- client events ------------------------------------------------------------------

    def _append(self, event: Any, now: float) -> None:
        audio = event.audio
        if type(audio) is str:
            self._appended_ms += base64_length(audio) / self.info.input_bpms
            self._appends.add(self._appended_ms, now)

    def _response_create(self, event: Any, now: float) -> None:
        self._requested = _Request(now, _str(event.event_id), self._tool_output)
        self._tool_output = False

    def _response_cancel(self, event: Any, now: float) -> None:
        self._cut_all(now)

    def _commit(self, event: Any, now: float) -> None:
        if self.info.transcription:  # a transcription's client trigger
            self._requested = _Request(now, None, False)

    def _item_create(self, event: Any, now: float) -> None:
        item = event.item
        kind = getattr(type(item), "TYPE", None) or getattr(item, "type", None)
        if kind != "function_call_output":
            return
        self._tool_output = True
        call_id = _str(getattr(item, "call_id", None))
        call = self._calls.pop(call_id, None) if call_id else None
        if call is None or call_id is None:
            return
        output = getattr(item, "output", None)
        self._write(
            ToolRecord(
                call_id=self._clean(call_id),
                name=self._clean(call.name) if call.name else None,
                response_id=self._clean(call.response_id) if call.response_id else None,
                duration_ms=ms(max(0.0, now - call.done)),
                output_chars=len(output) if type(output) is str else 0,
            )
        )

    def _truncate(self, event: Any, now: float) -> None:
        item_id = _str(event.item_id)
        response_id, audio_bytes = self._items.get(item_id or "", (None, 0))
        heard = _position(event.audio_end_ms)
        self.totals.interruptions += 1
        self._write(
            InterruptionRecord(
                item_id=self._clean(item_id) if item_id else None,
                response_id=self._clean(response_id) if response_id else None,
                heard_ms=heard,
                generated_ms=round(audio_bytes / self.info.output_bpms, 1) if audio_bytes else None,
            )
        )
        if response_id is None:
            return
        turn = self._playing.pop(response_id, None)
        if turn is not None:  # done, and cut while the user listened
            turn.interrupted = True
            turn.heard_ms = float(heard) if heard is not None else self._played(turn, now)
            self._write(self._writer.record(turn, now))
        elif (turn := self._open.get(response_id)) is not None:
            turn.interrupted = True
            turn.heard_ms = float(heard) if heard is not None else self._played(turn, now)

    # --- server events ------------------------------------------------------------------

    def _speech_started(self, event: Any, now: float) -> None:
        self._speech_start_ms = _position(event.audio_start_ms)
        self._cut_all(now)

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

    def _error(self, event: Any, now: float) -> None:
        """A refused `response.create` sets no start mark: the `error` names its event id,
        or (when it carried none) is the first error before any `response.created`."""
        request = self._requested
        if request is None:
            return
        named = _str(getattr(event.error, "event_id", None))
        if (request.event_id is None) or (named is not None and named == request.event_id):
            self._requested = None
            self._tool_output = request.after_tool  # still owed a response

    def _response_created(self, event: Any, now: float) -> None:
        self._open_turn(_str(getattr(event.response, "id", None)), now)

    def _committed_item(self, event: Any, now: float) -> None:
        item_id = _str(event.item_id)
        if self.info.transcription:
            self._open_turn(item_id, now)
        else:
            self._committed = item_id

    def _open_turn(self, response_id: str | None, now: float) -> None:
        """A response (or, transcribing, a committed item) begins: its trigger and mark."""
        if response_id is None:
            return
        request = self._requested
        user_start: float | None
        if request is not None:
            trigger, start, heard = "client", request.at, None
            user_start = self._user_start if request.after_tool else start
            self._requested = None
        elif self._vad is not None:
            trigger, (start, heard) = "vad", self._vad
            user_start = start
        else:
            trigger, start, heard, user_start = "vad", None, None, None
        self._vad = None
        self._user_start = user_start if user_start is not None else start
        pop_oldest(self._open, _MAX_OPEN)
        item = response_id if self.info.transcription else self._committed
        self._committed = None
        self._open[response_id] = Turn(
            response_id=response_id,
            trigger=trigger,
            start=start,
            user_start=user_start,
            created=now,
            input_audio_ms=heard,
            silence_ms=self.info.silence_ms if trigger == "vad" else None,
            input_item=item,
        )

    def _turn(self, event: Any) -> Turn | None:
        response_id = _str(getattr(event, "response_id", None))
        return self._open.get(response_id) if response_id else None

    def _audio_delta(self, event: Any, now: float) -> None:
        turn = self._turn(event)
        delta = event.delta
        n = base64_length(delta) if type(delta) is str else 0
        item_id = _str(getattr(event, "item_id", None))
        if item_id is not None:
            response_id, before = self._items.pop(item_id, (turn.response_id if turn else None, 0))
            pop_oldest(self._items, _MAX_ITEMS)
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
        usage = event.usage if isinstance(event.usage, dict) else None
        if not self.info.transcription:
            self._writer.input_transcript(item_id, event.transcript, usage)
            return
        turn = self._open.pop(item_id, None) if item_id else None
        if turn is None:
            return
        turn.first_output = now  # the completed transcript is the answer waited for
        turn.done, turn.status, turn.usage = now, "completed", usage
        turn.model = self.info.transcription_model or self.info.model
        self._write(self._writer.record(turn, now))

    def _arguments_done(self, event: Any, now: float) -> None:
        call_id = _str(event.call_id)
        if call_id is None:
            return
        name = _str(event.name)
        turn = self._turn(event)
        if turn is not None and len(turn.tool_calls) < _MAX_CALLS:
            turn.tool_calls.append({"name": name or "", "call_id": call_id})
        pop_oldest(self._calls, _MAX_CALLS)
        self._calls[call_id] = _Call(name, turn.response_id if turn else None, now)

    def _response_done(self, event: Any, now: float) -> None:
        response = event.response
        response_id = _str(getattr(response, "id", None))
        turn = self._open.pop(response_id, None) if response_id else None
        if turn is None:
            return
        turn.done = now
        turn.status = _str(getattr(response, "status", None)) or "completed"
        details = getattr(response, "status_details", None)
        turn.reason = _str(details.get("reason")) if isinstance(details, dict) else None
        if turn.status == "cancelled" and turn.reason in ("turn_detected", "client_cancelled"):
            turn.interrupted = True
        usage = getattr(response, "usage", None)
        turn.usage = usage if isinstance(usage, dict) else None
        if turn.output_audio_bytes and turn.heard_ms is None and not turn.interrupted:
            # The user is still listening: written once heard out, or cut.
            pop_oldest(self._playing, _MAX_OPEN)
            self._playing[turn.response_id] = turn
            self._heard_out(now)
        else:
            if turn.heard_ms is None:
                turn.heard_ms = self._played(turn, now)
            self._write(self._writer.record(turn, now))

    # --- what the user heard --------------------------------------------------------------

    def _output_ms(self, turn: Turn) -> float:
        return round(turn.output_audio_bytes / self.info.output_bpms, 1)

    def _played(self, turn: Turn, now: float) -> float:
        """The audio played by `now`, at real time from its first delta's forwarding."""
        if turn.first_audio is None:
            return 0.0
        return min(ms(max(0.0, now - turn.first_audio)), self._writer.output_ms(turn))

    def _heard_out(self, now: float) -> None:
        for turn in list(self._playing.values()):
            assert turn.first_audio is not None  # only turns with audio are playing
            if now >= turn.first_audio + self._writer.output_ms(turn) / 1000:
                del self._playing[turn.response_id]
                turn.heard_ms = self._writer.output_ms(turn)
                self._write(self._writer.record(turn, now))

    def _cut_all(self, now: float) -> None:
        """Speech started, or the client cancelled: what was still being said is cut."""
        for turn in self._open.values():
            turn.interrupted = True
            if turn.heard_ms is None and turn.first_audio is not None:
                turn.heard_ms = self._played(turn, now)
        for turn in list(self._playing.values()):
            del self._playing[turn.response_id]
            turn.interrupted = True
            turn.heard_ms = self._played(turn, now)
            self._write(self._writer.record(turn, now))

    # --- records ------------------------------------------------------------------------

    def close(self, now: float, duration_s: float | None = None) -> dict[str, Any]:
        """Write every turn not written yet (the session ended: responses in progress are
        `unfinished`, and audio not heard out was cut); the session's totals, with the
        connection time priced where the provider bills it (`per_session_minute`)."""
        self._heard_out(now)
        for turn in list(self._playing.values()):
            turn.interrupted = True
            turn.heard_ms = self._played(turn, now)
            self._write(self._writer.record(turn, now))
        self._playing.clear()
        for turn in list(self._open.values()):
            if turn.first_audio is not None:
                turn.heard_ms = self._played(turn, now)
                turn.interrupted = turn.interrupted or turn.heard_ms < self._writer.output_ms(turn)
            else:
                turn.heard_ms = 0.0
            self._write(self._writer.record(turn, now))
        self._open.clear()
        prices = self._prices.prices(self.info.model)
        if duration_s is not None and prices is not None and prices.per_session_minute:
            self.connection_cost_usd = round(duration_s / 60 * prices.per_session_minute, 9)
            self.totals.add_cost(self.connection_cost_usd)
        return self.totals.report()


# Which method follows which event, by event class (each event set's class for a wire
# type): one table for every session.
_Handler = Callable[[TurnTracker, Any, float], None]
_CLIENT: Final[dict[str, _Handler]] = {
    "input_audio_buffer.append": TurnTracker._append,
    "input_audio_buffer.commit": TurnTracker._commit,
    "response.create": TurnTracker._response_create,
    "response.cancel": TurnTracker._response_cancel,
    "conversation.item.create": TurnTracker._item_create,
    "conversation.item.truncate": TurnTracker._truncate,
}
_SERVER: Final[dict[str, _Handler]] = {
    "error": TurnTracker._error,
    "input_audio_buffer.speech_started": TurnTracker._speech_started,
    "input_audio_buffer.speech_stopped": TurnTracker._speech_stopped,
    "input_audio_buffer.committed": TurnTracker._committed_item,
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
    "conversation.item.input_audio_transcription.delta": TurnTracker._transcript_delta,
    "conversation.item.input_audio_transcription.completed": TurnTracker._transcribed,
}
_HANDLERS: Final[dict[type, _Handler]] = {
    cls: table[cls.TYPE]
    for event_set in ("ga", "beta")
    for direction, table in (("client", _CLIENT), ("server", _SERVER))
    for cls in protocol.event_classes(event_set, direction)  # type: ignore[arg-type]
    if cls.TYPE in table
}
