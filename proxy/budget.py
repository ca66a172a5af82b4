"""
A session's record budget: what one session may put into the shared log per second.

Every session writes through one log buffer; a session that floods (a million empty
frames, each a `realtime.undecodable`) would fill it and make every other session lose
records (SPEC §1.8). Each session has a token bucket of `limits.session_records_per_second`
with a burst of `limits.session_records_burst`; a record past it is not written but
folded into counts — by direction, record kind and event type, with bytes and the first
time — which a `realtime.suppressed` record reports once the session has tokens again,
at the next tick of the summary clock, or at its end. Turn, tool, interruption, close and
error records are written by the session's other parts and never pass through here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from proxy.log import rfc3339

_MAX_TYPES: Final = 32  # event types counted by name per direction; the rest as "other"


class _Folded:
    """What one direction of a session did not write."""

    __slots__ = ("bytes", "counts", "first_ts", "records")

    def __init__(self, first_ts: str) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self.records = 0
        self.bytes = 0
        self.first_ts = first_ts

    def add(self, kind: str, event_type: str, size: int) -> None:
        by_type = self.counts.setdefault(kind, {})
        if event_type not in by_type and sum(map(len, self.counts.values())) >= _MAX_TYPES:
            event_type = "other"
        by_type[event_type] = by_type.get(event_type, 0) + 1
        self.records += 1
        self.bytes += size


class RecordBudget:
    """A token bucket of records for one session, and the counts of what it held back."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        now_ts: Callable[[], str] = lambda: rfc3339(time.time()),
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()
        self._now_ts = now_ts
        self._folded: dict[str, _Folded] = {}
        self.suppressed_total = 0

    def take(self) -> bool:
        """Whether one more record may be written now (a token is spent if so)."""
        if self._rate <= 0:
            return True
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def fold(self, direction: str, kind: str, event_type: str, size: int) -> None:
        """Count a record that was not written."""
        folded = self._folded.get(direction)
        if folded is None:
            folded = self._folded[direction] = _Folded(self._now_ts())
        folded.add(kind, event_type, size)
        self.suppressed_total += 1

    @property
    def holding(self) -> bool:
        """Whether there are counts not yet reported."""
        return bool(self._folded)

    def report(self) -> list[dict[str, Any]]:
        """The `realtime.suppressed` records' fields for what was held back; reset."""
        out = [
            {
                "direction": direction,
                "records": folded.records,
                "count": folded.counts,
                "bytes": folded.bytes,
                "first_ts": folded.first_ts,
            }
            for direction, folded in self._folded.items()
        ]
        self._folded.clear()
        return out
