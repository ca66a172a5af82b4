"""
What the turn tracker writes (SPEC §4, §4a): `realtime.turn`, `realtime.tool` and
`realtime.interruption` as typed records, and what a turn becomes when it is over — its
figures, its price, the user's words — by `TurnWriter`, which also keeps the session's
running totals for `ws.close`. The tracker (`proxy.turns`) decides *when* a turn is over;
this module, *what* its record says. The session logs a record's `fields()`, metrics
count it by its attributes, traces make it a span.
"""

from __future__ import annotations

import array
import collections
import re
import statistics
from collections.abc import Callable
from typing import Any, ClassVar, Final

import attrs

from proxy.pricing import PriceTable, cost, token_counts, usage_problems
from proxy.session_info import SessionInfo

_MAX_LATENCIES: Final = 1024  # latencies kept for the session's p50
_MAX_TRANSCRIPTS: Final = 16  # input transcripts waiting for their turn's record
_MAX_TRANSCRIPT_CHARS: Final = 4096  # of one input transcript kept
_COUNT_KEY: Final = re.compile(r"[a-z_]{1,40}")


def ms(seconds: float) -> float:
    """Seconds as milliseconds with one decimal."""
    return round(seconds * 1000, 1)


def token_counts_only(usage: object, depth: int = 0) -> Any:
    """`usage` as the peer gave it, but counts only: numbers, the objects that hold them
    and the usage's `type`, under plain field names (nothing else of the wire)."""
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
            inner = token_counts_only(value, depth + 1)
            if inner:
                out[key] = inner
    return out


@attrs.define
class _Record:
    # An attrs class as its subclasses are: mypyc compiles this module's users, and an
    # interpreted class cannot inherit from a compiled one.
    EVENT: ClassVar[str]

    def fields(self) -> dict[str, Any]:
        """The record's fields as logged."""
        return attrs.asdict(self, recurse=False)


@attrs.define(kw_only=True)
class TurnRecord(_Record):
    """`realtime.turn`: one response, once it is over for the user."""

    EVENT: ClassVar[str] = "realtime.turn"

    response_id: str
    status: str
    reason: str | None
    trigger: str
    latency_ms: float | None
    user_wait_ms: float | None
    first_audio_ms: float | None
    first_text_ms: float | None
    response_ms: float | None
    output_audio_ms: float
    heard_ms: float | None
    input_audio_ms: float | None
    speech_ms: float | None
    silence_ms: int | None
    input_transcript: Any
    interrupted: bool
    tool_calls: list[dict[str, str]]
    usage: Any
    cost_usd: float | None
    transcription_cost_usd: float | None
    problems: list[str] = attrs.field(factory=list)
    start_ts: str | None = None

    def fields(self) -> dict[str, Any]:
        """As logged: `problems` only when there are some, `start_ts` when known."""
        out = super().fields()
        if not self.problems:
            del out["problems"]
        if self.start_ts is None:
            del out["start_ts"]
        return out


@attrs.define(kw_only=True)
class ToolRecord(_Record):
    """`realtime.tool`: the app's time for one function call."""

    EVENT: ClassVar[str] = "realtime.tool"

    call_id: str
    name: str | None
    response_id: str | None
    duration_ms: float
    output_chars: int


@attrs.define(kw_only=True)
class InterruptionRecord(_Record):
    """`realtime.interruption`: the client truncated an assistant audio item."""

    EVENT: ClassVar[str] = "realtime.interruption"

    item_id: str | None
    response_id: str | None
    heard_ms: int | None
    generated_ms: float | None


Record = TurnRecord | ToolRecord | InterruptionRecord


@attrs.define
class Totals:
    """A session's sums for `ws.close`: bounded (the latencies kept are capped)."""

    turns: int = 0
    interruptions: int = 0
    tokens: dict[str, int] = attrs.field(factory=dict)
    usage: dict[str, int] = attrs.field(factory=dict)
    cost_usd: float = 0.0
    transcription_cost_usd: float = 0.0
    priced: bool = False
    # The last `_MAX_LATENCIES` of each, made on the first turn: an idle session holds
    # none (a bounded deque is ~0.8 KB even empty, and idle sessions are counted in KB).
    latencies: collections.deque[float] | None = None
    waits: collections.deque[float] | None = None

    def add_latency(self, latency: float | None, wait: float | None) -> None:
        """Keep a turn's latency and the user's wait for the session's p50 and max."""
        if latency is not None:
            if self.latencies is None:
                self.latencies = collections.deque(maxlen=_MAX_LATENCIES)
            self.latencies.append(latency)
        if wait is not None:
            if self.waits is None:
                self.waits = collections.deque(maxlen=_MAX_LATENCIES)
            self.waits.append(wait)

    def add_cost(self, spent: float | None, *, transcription: bool = False) -> None:
        """Add a priced figure (None: not priced) to the session's cost."""
        if spent is None:
            return
        self.cost_usd += spent
        self.priced = True
        if transcription:
            self.transcription_cost_usd += spent

    def report(self) -> dict[str, Any]:
        """The totals as `ws.close` carries them."""
        return {
            "turns": self.turns,
            "interruptions": self.interruptions,
            "usage": dict(self.usage),
            "cost_usd": round(self.cost_usd, 9) if self.priced else None,
            "transcription_cost_usd": round(self.transcription_cost_usd, 9)
            if self.priced
            else None,
            "latency_ms": _spread(self.latencies),
            "user_wait_ms": _spread(self.waits),
        }


def _spread(values: collections.deque[float] | None) -> dict[str, float | None]:
    kept = list(values or ())
    return {
        "p50": round(statistics.median(kept), 1) if kept else None,
        "max": max(kept) if kept else None,
    }


class AppendMarks:
    """When the input audio reached each position: the last `size` appends' (position in
    ms, forward time), in two fixed arrays made on the first append (4 KB at most)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._pos = array.array("d")
        self._time = array.array("d")
        self._n = 0  # appends marked so far

    def add(self, position_ms: float, now: float) -> None:
        """Audio reached `position_ms` at `now`."""
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


def pop_oldest(table: dict[Any, Any], limit: int) -> None:
    """Make room for one more entry in a bounded table (insertion order: oldest first)."""
    if len(table) >= limit:
        del table[next(iter(table))]


@attrs.define
class Turn:
    """One response, from its `response.created` until its record is written."""

    response_id: str
    trigger: str
    start: float | None  # the start mark (monotonic seconds)
    user_start: float | None  # the user turn's start mark
    created: float
    input_audio_ms: float | None = None
    silence_ms: int | None = None
    input_item: str | None = None  # the input item committed for this turn
    first_output: float | None = None
    first_audio: float | None = None
    first_text: float | None = None
    output_audio_bytes: int = 0
    interrupted: bool = False
    heard_ms: float | None = None  # set where the audio was cut
    tool_calls: list[dict[str, str]] = attrs.field(factory=list)
    # From its `response.done` (or the completed transcription, transcribing):
    done: float | None = None
    status: str = "unfinished"
    reason: str | None = None
    usage: dict[str, Any] | None = None
    model: str | None = None


class TurnWriter:
    """What a finished turn's record says, and the session's totals."""

    def __init__(
        self,
        info: SessionInfo,
        prices: PriceTable,
        *,
        clean: Callable[[str], str],
        transcript: Callable[[str], Any],
        wall: Callable[[float], str] | None,
    ) -> None:
        self.info = info
        self.totals = Totals()
        self._prices = prices
        self._clean = clean
        self._transcript = transcript
        self._wall = wall
        # item -> its input transcript, rendered (text policy, masking) only when a
        # record carries it: what is never written is never counted as masked.
        self._transcripts: dict[str, str] = {}
        self._transcription_costs: dict[str, float] = {}

    def output_ms(self, turn: Turn) -> float:
        """The turn's audio, in ms, from its bytes and the session's output format."""
        return round(turn.output_audio_bytes / self.info.output_bpms, 1)

    def input_transcript(self, item_id: str | None, text: object, usage: Any) -> None:
        """The user's words for a turn, and what transcribing them cost: on the turn's
        record when it is still to be written, in the session's totals either way."""
        if item_id is None:
            return
        problems = usage_problems(usage) if usage is not None else []
        model = self.info.transcription_model
        spent = cost(usage, self._prices.prices(model)) if usage and not problems else None
        self.totals.add_cost(spent, transcription=True)
        pop_oldest(self._transcripts, _MAX_TRANSCRIPTS)
        if type(text) is str:
            self._transcripts[item_id] = text[:_MAX_TRANSCRIPT_CHARS]
        if spent is not None:
            pop_oldest(self._transcription_costs, _MAX_TRANSCRIPTS)
            self._transcription_costs[item_id] = spent

    def record(self, turn: Turn, now: float) -> TurnRecord:
        """The turn's record, its figures added to the totals."""

        def since(t: float | None, mark: float | None) -> float | None:
            return None if t is None or mark is None else ms(max(0.0, t - mark))

        latency = since(turn.first_output, turn.start)
        wait = since(turn.first_output, turn.user_start)
        usage = turn.usage
        problems = usage_problems(usage) if usage is not None else []
        priced = usage if not problems else None  # not costed, not summed
        turn_cost = (
            cost(priced, self._prices.prices(turn.model or self.info.model))
            if priced is not None
            else None
        )
        self._add(latency, wait, priced, turn_cost)
        item = turn.input_item if not self.info.transcription else None
        words = self._transcripts.pop(item, None) if item else None
        clean = self._clean
        return TurnRecord(
            response_id=clean(turn.response_id),
            status=clean(turn.status),
            reason=clean(turn.reason) if turn.reason else None,
            trigger=turn.trigger,
            latency_ms=latency,
            user_wait_ms=wait,
            first_audio_ms=since(turn.first_audio, turn.start),
            first_text_ms=since(turn.first_text, turn.start),
            response_ms=since(turn.done if turn.done is not None else now, turn.created),
            output_audio_ms=self.output_ms(turn),
            heard_ms=turn.heard_ms,
            input_audio_ms=turn.input_audio_ms,
            speech_ms=self._speech_ms(turn),
            silence_ms=turn.silence_ms,
            input_transcript=self._transcript(words) if words is not None else None,
            interrupted=turn.interrupted,
            tool_calls=[{k: clean(v) for k, v in call.items()} for call in turn.tool_calls],
            usage=token_counts_only(usage),
            cost_usd=turn_cost,
            transcription_cost_usd=self._transcription_costs.pop(item, None) if item else None,
            problems=problems,
            start_ts=self._wall(turn.start)
            if self._wall is not None and turn.start is not None
            else None,
        )

    def _add(
        self,
        latency: float | None,
        wait: float | None,
        usage: dict[str, Any] | None,
        spent: float | None,
    ) -> None:
        totals = self.totals
        totals.turns += 1
        totals.add_latency(latency, wait)
        if usage is not None:
            for key in ("input_tokens", "output_tokens", "total_tokens"):
                if type(usage.get(key)) is int:
                    totals.usage[key] = totals.usage.get(key, 0) + usage[key]
            for kind, n in token_counts(usage).items():
                totals.tokens[kind] = totals.tokens.get(kind, 0) + n
        totals.add_cost(spent)

    def _speech_ms(self, turn: Turn) -> float | None:
        """The speech alone: the turn's input audio less VAD's prefix padding and silence
        window (when the session's turn detection gave both)."""
        info = self.info
        if turn.input_audio_ms is None or info.prefix_padding_ms is None or info.silence_ms is None:
            return None
        return max(0.0, turn.input_audio_ms - info.prefix_padding_ms - info.silence_ms)
