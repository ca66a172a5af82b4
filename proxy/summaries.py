"""
Summaries: high-volume frames (audio appends, audio and text deltas) folded into one
`realtime.summary` record per stream until a natural boundary.

A stream is named by its `SummaryKey` (direction, event type, item, response). Its
summary counts frames, wire bytes, decoded audio bytes and milliseconds, or text
characters — counts only, so memory stays bounded — and is written at a boundary (a
commit, speech stopped, the matching `.done`, the response's end, the close), when it
has been open `log.summary_interval` seconds, or when a 65th stream opens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import attrs

from proxy.audio import base64_length
from proxy.log import rfc3339
from proxy.redact import Redactor

_MAX_OPEN: Final = 64

# Client events and server events that end the client's audio stream for now.
_INPUT_BOUNDARIES: Final = frozenset(
    {
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "session.close",
        "session.closed",
    }
)
_RESPONSE_BOUNDARIES: Final = frozenset({"response.done", "response.cancel", "session.closed"})
# The end of a stream of deltas: `x.done` (text, audio, arguments) and `x.completed` or
# `x.failed` (input transcription) end the summary of `x.delta` for the same item, at once.
_STREAM_ENDS: Final = (".done", ".completed", ".failed")


def is_boundary(event_type: str) -> bool:
    """Whether an event of this type may end open summaries (see `Summaries.boundary`)."""
    return (
        event_type in _INPUT_BOUNDARIES
        or event_type in _RESPONSE_BOUNDARIES
        or event_type.endswith(_STREAM_ENDS)
    )


class SummaryKey(NamedTuple):
    """The stream a frame belongs to. (A plain tuple of the same values finds it in a
    dict: the per-frame lookup builds no named tuple.)"""

    direction: str
    type: str
    item_id: str | None
    response_id: str | None


@attrs.define
class Summary:
    """Frames of one stream folded together: counts only, so memory stays bounded."""

    direction: str
    type: str
    started: float
    first_ts: str
    item_id: str | None = None
    response_id: str | None = None
    frames: int = 0
    bytes: int = 0
    wire_bytes: int = 0
    ms: float = 0.0
    chars: int = 0
    audio: bool = False

    def record(self) -> dict[str, Any]:
        """The `realtime.summary` record's fields."""
        out: dict[str, Any] = {
            "direction": self.direction,
            "type": self.type,
            "frames": self.frames,
            "bytes": self.bytes if self.audio else self.wire_bytes,
            "wire_bytes": self.wire_bytes,
        }
        if self.audio:
            out["ms"] = round(self.ms, 1)
        elif self.chars:
            out["chars"] = self.chars
        if self.item_id is not None:
            out["item_id"] = self.item_id
        if self.response_id is not None:
            out["response_id"] = self.response_id
        out["first_ts"] = self.first_ts
        return out


class Summaries:
    """One connection's open summaries; `write` takes each finished one's record."""

    def __init__(
        self,
        write: Callable[[dict[str, Any]], None],
        redactor: Redactor,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._redactor = redactor
        self._interval = interval
        self._clock = clock
        self._open: dict[SummaryKey, Summary] = {}

    def __len__(self) -> int:
        """Open summaries: at most 64."""
        return len(self._open)

    @property
    def frames(self) -> int:
        """Frames folded into the open summaries, not yet written."""
        return sum(s.frames for s in self._open.values())

    def fold(
        self,
        key: tuple[str, str, str | None, str | None],
        size: int,
        value: object,
        audio_bytes_per_ms: float,
    ) -> None:
        """Fold one frame: `value` is the measured field (base64 audio when
        `audio_bytes_per_ms` is set, else text), or not a string when it was absent."""
        now = self._clock()
        summary = self._open.get(key)  # type: ignore[call-overload]
        if summary is None:
            summary = self._start(SummaryKey(*key), now)
        summary.frames += 1
        summary.wire_bytes += size
        if type(value) is str:
            if audio_bytes_per_ms:
                n = base64_length(value)
                summary.audio = True
                summary.bytes += n
                summary.ms += n / audio_bytes_per_ms
            else:
                summary.chars += len(value)
        if now - summary.started >= self._interval:
            self._flush(SummaryKey(*key))

    def _start(self, key: SummaryKey, now: float) -> Summary:
        if len(self._open) >= _MAX_OPEN:
            self._flush(next(iter(self._open)))
        summary = self._open[key] = Summary(
            direction=key.direction,
            type=self._redactor.scrub_text(key.type, untrusted=True),
            started=now,
            first_ts=rfc3339(time.time()),
            item_id=self._redactor.cut(key.item_id, 128) if key.item_id else None,
            response_id=self._redactor.cut(key.response_id, 128) if key.response_id else None,
        )
        return summary

    def _flush(self, key: SummaryKey) -> None:
        summary = self._open.pop(key, None)
        if summary is not None:
            self._write(summary.record())

    def boundary(self, direction: str, event_type: str, item_id: object) -> None:
        """An event of `event_type` arrived: write the summaries it ends."""
        ended: list[SummaryKey] = []
        if event_type in _INPUT_BOUNDARIES:
            ended += [k for k in self._open if k.direction == "client"]
        if event_type.endswith(_STREAM_ENDS):
            delta = event_type[: event_type.rfind(".")] + ".delta"
            ended += [k for k in self._open if k.type == delta and k.item_id in (item_id, None)]
        if event_type in _RESPONSE_BOUNDARIES:
            ended += [
                k for k in self._open if k.direction == direction or event_type != "response.done"
            ]
        for key in ended:
            self._flush(key)

    def flush_stale(self, now: float | None = None) -> None:
        """Write summaries open longer than the interval, though no frame came to fold."""
        now = self._clock() if now is None else now
        for key in [k for k, s in self._open.items() if now - s.started >= self._interval]:
            self._flush(key)

    def close(self) -> None:
        """Write every open summary (at connection close)."""
        for key in list(self._open):
            self._flush(key)
