"""
Records: what one frame becomes in the log, per the event policy.

A `Recorder` belongs to one WebSocket session (`proxy.session`), which hands it each
decoded event before the frame is sent on. It only records: the event, redacted
(`redact`), becomes a `realtime.event`, a contribution to a `realtime.summary` (folded
by `proxy.summaries` until a natural boundary), or nothing (`off`); a frame that did not
decode becomes a `realtime.undecodable` with metadata only. Audio is measured in the
formats the session's `SessionInfo` has followed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import time
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

import protocol
from protocol import translation as tr
from protocol import types as pt
from proxy.audio import bytes_per_ms
from proxy.budget import RecordBudget
from proxy.config_schema import EVENT_MODES, EventMode
from proxy.log import Logger
from proxy.redact import Redactor
from proxy.session_info import SessionInfo
from proxy.summaries import Summaries, is_boundary

_MAX_STREAMS: Final = 64  # text delta streams followed at once, for keys split across deltas
_CARRY: Final = 256  # characters of a stream kept to find a key split across two deltas
_MAX_ID: Final = 128  # characters of a wire id kept in a key (as many as are logged)


def _cut(value: object) -> object:
    return value[:_MAX_ID] if type(value) is str else value


_POLICY_CACHE_MAX: Final = 1024


def _event_mode(value: str) -> EventMode:
    if value not in EVENT_MODES:
        raise ValueError(f"not an event mode: {value!r}")  # settings validated it already
    return value


class EventPolicy:
    """`full`, `summary` or `off` per event type, from exact names and globs."""

    def __init__(self, events: Mapping[str, str]) -> None:
        self.default = _event_mode(events.get("default", "full"))
        modes = {k: _event_mode(v) for k, v in events.items() if k != "default"}
        self._exact = {k: v for k, v in modes.items() if not _is_glob(k)}
        self._globs = [(k, v) for k, v in modes.items() if _is_glob(k)]
        # The modes worked out so far, by type.
        self.cache: dict[str, EventMode] = {}
        # By modelled event class (a fixed set): its kind and mode, which the recorder
        # reads first, per frame, in one lookup.
        self.plans: dict[type, tuple[_Kind, EventMode]] = {}

    def mode(self, event_type: str) -> EventMode:
        """The mode for one event type: exact name, then the first matching glob, then the
        default."""
        mode = self.cache.get(event_type)
        if mode is None:
            mode = self._resolve(event_type)
            if len(self.cache) < _POLICY_CACHE_MAX:
                self.cache[event_type] = mode
        return mode

    def _resolve(self, event_type: str) -> EventMode:
        exact = self._exact.get(event_type)
        if exact is not None:
            return exact
        for pattern, mode in self._globs:
            if fnmatch.fnmatchcase(event_type, pattern):
                return mode
        return self.default


def _is_glob(key: str) -> bool:
    return any(c in key for c in "*?[")


@attrs.frozen
class _Kind:
    """What the recorder needs to know of an event class, worked out once, not per frame."""

    type: str
    boundary: bool
    session: bool = False  # carries a session config: its id and audio formats
    fold: str | None = None  # the field a summary measures (`audio` or `delta`)
    audio: bool = False  # the fold field is base64 audio
    own_rate: bool = False  # the event names its own sample rate (translation deltas)
    item: bool = False  # has `item_id`
    response: bool = False  # has `response_id`


def _kind(cls: type[protocol.Event]) -> _Kind:
    hints = typing.get_type_hints(cls)
    names = {a.name for a in attrs.fields(cls)}
    fold = next((n for n in ("audio", "delta") if n in names), None)
    return _Kind(
        type=cls.TYPE,
        boundary=is_boundary(cls.TYPE),
        session="session" in names,
        fold=fold,
        audio=fold is not None and hints[fold] is pt.Audio,
        own_rate=cls is tr.OutputAudioDelta,
        item="item_id" in names,
        response="response_id" in names,
    )


def _unknown_kind(event: protocol.Event | protocol.UnknownEvent) -> _Kind:
    """The kind of an event whose class is not in the tables: known by its type alone."""
    event_type = event.type if isinstance(event, protocol.UnknownEvent) else type(event).TYPE
    return _Kind(type=event_type, boundary=is_boundary(event_type))


_KINDS: Final[dict[type, _Kind]] = {
    cls: _kind(cls)
    for proto in protocol.EVENT_SETS
    for direction in ("client", "server")
    for cls in protocol.event_classes(proto, direction)
}


Plan = tuple[_Kind, EventMode]


class Recorder:
    """Turns one connection's frames into records, before they are forwarded."""

    def __init__(
        self,
        log: Logger,
        redactor: Redactor,
        policy: EventPolicy,
        *,
        info: SessionInfo | None = None,
        summary_interval: float = 5.0,
        budget: RecordBudget | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.budget = budget
        self.on_error = on_error
        self.info = info if info is not None else SessionInfo()
        self._redactor = redactor
        self._policy = policy
        # By modelled event class: its kind and mode (one lookup per frame; the session
        # reads it first, `plan` works out a class not seen yet).
        self.plans = policy.plans
        self.summaries = Summaries(self._write_summary, redactor, summary_interval, clock)
        self._carries: dict[tuple[Any, ...], str] = {}

    def bind(self, **context: Any) -> None:
        """Bind more context (the session's id, once known) to every later record."""
        self.log = self.log.bind(**context)

    # --- the per-frame path ------------------------------------------------------------

    def plan(self, decoded: object) -> Plan | None:
        """How a decoded frame is recorded: its kind and mode; None when it did not
        decode. A modelled class's plan is worked out once; an unknown event's kind
        depends on its type string, so it is worked out again."""
        plan = self.plans.get(type(decoded))
        if plan is not None:
            return plan
        if not isinstance(decoded, protocol.Event | protocol.UnknownEvent):
            return None
        kind = _KINDS.get(type(decoded)) or _unknown_kind(decoded)
        plan = (kind, self._policy.mode(kind.type))
        if isinstance(decoded, protocol.Event):
            self.plans[type(decoded)] = plan
        return plan

    def record(
        self,
        direction: protocol.Direction,
        plan: Plan,
        event: Any,
        size: int,
    ) -> None:
        """Record one decoded event of `size` bytes as its plan says: folded into its
        summary (most frames of a voice session), logged whole, or not at all."""
        kind, mode = plan
        if kind.boundary and self.summaries:
            self.summaries.boundary(direction, kind.type, getattr(event, "item_id", None))
        if mode != "summary":
            if mode != "off":
                self._record(direction, kind, event, size)
            return
        # The hot path. Everything about the event's class was worked out once, in its
        # `_Kind`; ids are kept as long as they are logged (bounded by bytes).
        item_id = event.item_id if kind.item else None
        response_id = event.response_id if kind.response else None
        if type(item_id) is not str:
            item_id = None
        elif len(item_id) > _MAX_ID:
            item_id = item_id[:_MAX_ID]
        if type(response_id) is not str:
            response_id = None
        elif len(response_id) > _MAX_ID:
            response_id = response_id[:_MAX_ID]
        if not kind.audio:
            bpms = 0.0
        elif kind.own_rate:
            bpms = self._bpms(direction, kind, event)
        else:
            info = self.info
            bpms = info.input_bpms if direction == "client" else info.output_bpms
        self.summaries.fold(
            (direction, kind.type, item_id, response_id),
            size,
            # The measured field is a string, or UNSET/None where the protocol allows.
            getattr(event, kind.fold) if kind.fold is not None else None,
            bpms,
        )

    def _spend(self, direction: str, kind: str, event_type: str, size: int) -> bool:
        """Whether the session's budget lets one more record be written; if not, it is
        counted instead (SPEC §1.8), and what was held back is reported once it can be."""
        budget = self.budget
        if budget is None:
            return True
        if not budget.take():
            budget.fold(direction, kind, event_type, size)
            return False
        if budget.holding:
            self.report_suppressed()
        return True

    def report_suppressed(self) -> None:
        """Write what the budget held back, as `realtime.suppressed` records."""
        if self.budget is not None:
            for fields in self.budget.report():
                self.log.warning("realtime.suppressed", **fields)

    def undecodable(self, direction: str, data: bytes, reason: str) -> None:
        """A frame that did not decode (or a binary one): metadata only."""
        if not self._spend(direction, "realtime.undecodable", "-", len(data)):
            return
        self.log.warning(
            "realtime.undecodable",
            direction=direction,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest()[:16],
            reason=reason,
        )

    def _record(
        self,
        direction: str,
        kind: _Kind,
        event: protocol.Event | protocol.UnknownEvent,
        size: int,
    ) -> None:
        """One `realtime.event` record: the whole event, redacted."""
        unknown = isinstance(event, protocol.UnknownEvent)
        if self.budget is not None and not self._spend(
            direction,
            "realtime.event",
            self._redactor.cut(kind.type, 64) if unknown else kind.type,
            size,
        ):
            return
        payload = self._redactor.model(event, audio_bytes_per_ms=self._bpms(direction, kind, event))
        if kind.fold == "delta" and not kind.audio and type(payload.get("delta")) is str:
            payload["delta"] = self._stream_text(direction, kind, event)
        record: dict[str, Any] = {
            "direction": direction,
            # A modelled event's type is one of ours; only an unknown one came off the wire.
            "type": self._redactor.scrub_text(kind.type, untrusted=True) if unknown else kind.type,
            "size": size,
            "payload": payload,
        }
        event_id = (
            event.event_id if isinstance(event, protocol.Event) else event.extra.get("event_id")
        )
        if isinstance(event_id, str):
            record["event_id"] = self._redactor.cut(event_id, 128)
        if unknown:
            record["unknown"] = True
        elif problems := protocol.validate(event):
            record["problems"] = problems
        self.log.info("realtime.event", **record)

    def _stream_text(self, direction: str, kind: _Kind, event: Any) -> str:
        """A text delta logged whole, scrubbed with the end of its stream's earlier
        deltas: a key split across two deltas is redacted in both (SPEC §1, invariant 4)."""
        key = (
            direction,
            kind.type,
            _cut(getattr(event, "item_id", None)),
            getattr(event, "content_index", None),
            _cut(getattr(event, "call_id", None)),
        )
        carry = self._carries.pop(key, "")
        text: str = event.delta
        if len(self._carries) >= _MAX_STREAMS:
            del self._carries[next(iter(self._carries))]
        self._carries[key] = (carry + text)[-_CARRY:]
        return self._redactor.personal.mask_stream(carry, self._redactor.scrub_stream(carry, text))

    def _write_summary(self, record: dict[str, Any]) -> None:
        if self._spend(
            record["direction"], "realtime.summary", record["type"], record.get("wire_bytes", 0)
        ):
            self.log.info("realtime.summary", **record)

    def flush_stale(self, now: float | None = None) -> None:
        """Write summaries older than the interval, though no frame has come to fold;
        report what the budget held back."""
        self.summaries.flush_stale(now)
        if self.budget is not None and self.budget.holding:
            self.report_suppressed()

    def close(self) -> None:
        """Flush every open summary, and report what the budget held back (at
        connection close: what the session did is never lost, only folded)."""
        self.summaries.close()
        self.report_suppressed()

    def _bpms(self, direction: str, kind: _Kind, event: Any) -> float:
        """Bytes per millisecond of the audio `event` carries: its own rate (translation
        deltas) or the session's format for its direction."""
        if kind.own_rate and isinstance(event.sample_rate, int):
            channels = (
                event.channels if isinstance(event.channels, int) and event.channels > 0 else 1
            )
            return bytes_per_ms("audio/pcm", event.sample_rate) * channels
        return self.info.bpms(direction)
