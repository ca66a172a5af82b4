"""
`earshot report LOG…`: each session of an earshot log at a glance, from the log alone.

Records are streamed (files, `.gz` files, or `-` for stdin) and grouped by `conn`; a
session's figures are kept only until its `ws.close`, so memory follows the sessions open
at once, not the file. A line that is not an earshot record (garbage, a truncated last
line, another program's output) is counted and skipped. Works on logs pulled back from
Loki or Elasticsearch, and on older logs without turn records (their turn columns are
empty).
"""

from __future__ import annotations

import gzip
import heapq
import math
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Final

import attrs
import orjson

from proxy.pricing import token_counts

MAX_LINE: Final = 4 * 1024 * 1024  # bytes: no earshot record is longer
MAX_NESTING: Final = 64  # earshot's records nest a few dozen levels at most
MAX_MARKS: Final = 5000  # timeline marks drawn per session
_MAX_MS: Final = 86_400_000.0  # a day: a longer latency or tool time is a peer's error
_MAX_TOKENS: Final = 10**9
_MAX_COST: Final = 1e6

# What one record draws on a timeline: (lane, css class, start ms, end ms, label, title);
# an empty title is filled with the record itself.
Marker = Callable[[dict[str, Any]], list[tuple[str, str, float, float, str, str]]]


@attrs.define
class SessionRow:
    """One session's figures, as the report prints them."""

    conn: str
    start: str | None = None
    model: str | None = None
    session: str | None = None
    duration_ms: float | None = None
    turns: int = 0
    latencies: list[float] = attrs.field(factory=list)
    interruptions: int = 0
    tool_calls: int = 0
    slowest_tool: tuple[str, float] | None = None
    tokens: dict[str, int] = attrs.field(factory=dict)
    cost_usd: float | None = None
    undecodable: int = 0
    closed_by: str | None = None
    code: int | None = None
    # With a timeline: what each record draws, and the record itself for the hover,
    # until the session's section is drawn (then `anchor` says where it is).
    marks: list[tuple[str, str, float, float, str, str]] = attrs.field(factory=list)
    anchor: str | None = None

    def add(self, record: dict[str, Any], marker: Marker | None = None) -> None:
        """Fold one record of this session in (and its marks, given a `marker`)."""
        event = record.get("event")
        if marker is not None and len(self.marks) < MAX_MARKS:
            drawn = marker(record)
            if drawn:
                title = orjson.dumps(record).decode()[:2000]
                self.marks += [m if m[5] else (*m[:5], title) for m in drawn]
        self.start = self.start or _str(record.get("ts"))
        self.model = self.model or _str(record.get("model"))
        self.session = self.session or _str(record.get("session"))
        if event == "realtime.turn":
            self.turns += 1
            latency = num(record.get("latency_ms"))
            if latency is not None and 0 <= latency <= _MAX_MS:
                self.latencies.append(latency)
            for kind, n in token_counts(record.get("usage")).items():
                self.tokens[kind] = self.tokens.get(kind, 0) + min(n, _MAX_TOKENS)
            cost = num(record.get("cost_usd"))
            if cost is not None and 0 <= cost <= _MAX_COST:
                self.cost_usd = (self.cost_usd or 0.0) + cost
        elif event == "realtime.interruption":
            self.interruptions += 1
        elif event == "realtime.tool":
            self.tool_calls += 1
            duration = num(record.get("duration_ms"))
            if (
                duration is not None
                and 0 <= duration <= _MAX_MS
                and (self.slowest_tool is None or duration > self.slowest_tool[1])
            ):
                self.slowest_tool = (_str(record.get("name")) or "?", duration)
        elif event == "realtime.undecodable":
            self.undecodable += 1
        elif event == "ws.close":
            # The whole session's cost: its turns, its input transcription, and its
            # connection time where the provider bills that (SPEC §4a).
            whole = num(record.get("cost_usd"))
            if whole is not None and 0 <= whole <= _MAX_COST:
                self.cost_usd = whole
            duration = num(record.get("duration_ms"))
            self.duration_ms = duration if duration is not None and duration >= 0 else None
            self.closed_by = _str(record.get("closed_by"))
            self.code = record.get("code") if type(record.get("code")) is int else None

    def figures(self) -> dict[str, Any]:
        """The row as `--json` writes it (a stable schema)."""
        lat = sorted(self.latencies)
        return {
            "conn": self.conn,
            "session": self.session,
            "start": self.start,
            "model": self.model,
            "duration_ms": self.duration_ms,
            "turns": self.turns,
            "latency_ms": {
                "p50": round(statistics.median(lat), 1) if lat else None,
                "p95": lat[min(len(lat) - 1, int(len(lat) * 0.95))] if lat else None,
                "max": lat[-1] if lat else None,
            },
            "interruptions": self.interruptions,
            "tool_calls": self.tool_calls,
            "slowest_tool": (
                {"name": self.slowest_tool[0], "duration_ms": self.slowest_tool[1]}
                if self.slowest_tool
                else None
            ),
            "tokens": {
                "input_audio": self.tokens.get("input_audio", 0)
                + self.tokens.get("cached_input_audio", 0),
                "input_text": self.tokens.get("input_text", 0)
                + self.tokens.get("cached_input_text", 0),
                "output_audio": self.tokens.get("output_audio", 0),
                "output_text": self.tokens.get("output_text", 0),
            },
            "cost_usd": round(self.cost_usd, 9) if self.cost_usd is not None else None,
            "undecodable": self.undecodable,
            "closed_by": self.closed_by,
            "code": self.code,
        }


def _str(value: object) -> str | None:
    """A string from the log, safe for a terminal: no control characters (an escape
    sequence in a model or a tool name could rewrite the screen), at most 200 characters."""
    if not isinstance(value, str):
        return None
    value = value[:200]
    return value if value.isprintable() else "".join(c if c.isprintable() else "?" for c in value)


def num(value: object) -> float | None:
    """A finite number from the log, within ±10^12; anything else is unknown."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except OverflowError:  # an integer past a float's range
        return None
    return out if math.isfinite(out) and abs(out) <= 1e12 else None


@attrs.define
class Filters:
    """Which sessions to report: by connection id, start time and model. `since` is an
    RFC 3339 time with any offset (`2026-12-01T10:30:00+01:00`) or a duration back from
    now (`90m`, `2h`, `1d`, `45s`)."""

    conn: str | None = None
    since: str | None = None
    model: str | None = None
    _since: datetime | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if self.since is not None:
            self._since = since_time(self.since)

    def keep_turn(self, record: dict[str, Any]) -> bool:
        """Whether a turn record passes the filters (its own start, conn and model)."""
        if self._since is not None:
            start = _parse_ts(_str(record.get("start_ts")) or _str(record.get("ts")))
            if start is None or start < self._since:
                return False
        return (self.conn is None or record.get("conn") == self.conn) and (
            self.model is None or record.get("model") == self.model
        )

    def keep(self, row: SessionRow) -> bool:
        """Whether `row` passes every filter given."""
        if self._since is not None:
            start = _parse_ts(row.start)
            if start is None or start < self._since:
                return False
        return (self.conn is None or row.conn == self.conn) and (
            self.model is None or row.model == self.model
        )


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SINCE_FORMS: Final = (
    "--since takes an RFC 3339 time (2026-12-01T10:30:00Z, any offset) or a duration"
    " back from now (90m, 2h, 1d)"
)


def since_time(text: str, now: datetime | None = None) -> datetime:
    """`--since` as an aware UTC time: RFC 3339 (any offset; `Z`) or a duration back from
    `now` (`90m`, `2h`, `1d`). A ValueError names what it takes."""
    found = _DURATION.fullmatch(text.strip())
    if found:
        back = float(found.group(1)) * _UNIT_S[found.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=back)
    parsed = _parse_ts(text.strip())
    if parsed is None:
        raise ValueError(_SINCE_FORMS)
    return parsed


def _parse_ts(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        parsed = datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@attrs.define
class Report:
    """Every session read, by start time, and the count of lines that were not earshot
    records."""

    rows: list[SessionRow] = attrs.field(factory=list)
    skipped: int = 0
    # With `--turns`: the slowest turns, as (wait, order, figures), at most `turn_limit`.
    turns: list[tuple[float, int, dict[str, Any]]] = attrs.field(factory=list)
    turn_limit: int = 0

    def add_turn(self, record: dict[str, Any]) -> None:
        """Keep a turn if it is among the slowest `turn_limit` (a bounded heap)."""
        wait = num(record.get("user_wait_ms"))
        wait = num(record.get("latency_ms")) if wait is None else wait
        if wait is None or not 0 <= wait <= _MAX_MS:
            return
        figures = {
            "session": _str(record.get("session")),
            "conn": _str(record.get("conn")),
            "response_id": _str(record.get("response_id")),
            "start": _str(record.get("start_ts")) or _str(record.get("ts")),
            "model": _str(record.get("model")),
            "trigger": _str(record.get("trigger")),
            "status": _str(record.get("status")),
            "user_wait_ms": wait,
            "latency_ms": num(record.get("latency_ms")),
            "interrupted": record.get("interrupted") is True,
            "cost_usd": num(record.get("cost_usd")),
        }
        entry = (wait, -len(self.turns) - self.skipped, figures)
        if len(self.turns) < self.turn_limit:
            heapq.heappush(self.turns, entry)
        elif self.turns and entry[0] > self.turns[0][0]:
            heapq.heapreplace(self.turns, entry)

    def slowest_turns(self) -> list[dict[str, Any]]:
        """The turns kept, slowest wait first."""
        return [f for _, _, f in sorted(self.turns, key=lambda e: (-e[0], e[1]))]

    def totals(self) -> dict[str, Any]:
        """The sums over every row (latency over every turn)."""
        latencies = sorted(lat for r in self.rows for lat in r.latencies)
        figures = [r.figures() for r in self.rows]
        costs = [f["cost_usd"] for f in figures if f["cost_usd"] is not None]
        return {
            "sessions": len(self.rows),
            "turns": sum(f["turns"] for f in figures),
            "latency_ms": {
                "p50": round(statistics.median(latencies), 1) if latencies else None,
                "p95": latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
                if latencies
                else None,
                "max": latencies[-1] if latencies else None,
            },
            "interruptions": sum(f["interruptions"] for f in figures),
            "tool_calls": sum(f["tool_calls"] for f in figures),
            "tokens": {
                kind: sum(f["tokens"][kind] for f in figures)
                for kind in ("input_audio", "input_text", "output_audio", "output_text")
            },
            "cost_usd": round(sum(costs), 9) if costs else None,
            "undecodable": sum(f["undecodable"] for f in figures),
            "skipped_lines": self.skipped,
        }


def _bounded(f: IO[bytes] | gzip.GzipFile) -> Iterator[bytes | None]:
    """`f`'s lines, each at most `MAX_LINE` bytes: a longer one is read through in pieces
    and given as None (counted as skipped), never held whole."""
    while line := f.readline(MAX_LINE):
        if len(line) < MAX_LINE or line.endswith(b"\n"):
            yield line
            continue
        while (rest := f.readline(MAX_LINE)) and not rest.endswith(b"\n"):
            pass
        yield None


def _lines(paths: Iterable[str], stdin: IO[bytes]) -> Iterator[bytes | None]:
    for path in paths:
        if path == "-":
            yield from _bounded(stdin)
        elif path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                yield from _bounded(f)
        else:
            with open(path, "rb") as f:
                yield from _bounded(f)


def _too_deep(value: Any, depth: int = 0) -> bool:
    if depth > MAX_NESTING:
        return True
    if isinstance(value, dict):
        return any(_too_deep(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_too_deep(v, depth + 1) for v in value)
    return False


def build(
    paths: Iterable[str],
    filters: Filters | None = None,
    stdin: IO[bytes] | None = None,
    *,
    marker: Marker | None = None,
    on_closed: Callable[[SessionRow], None] | None = None,
    turns: int = 0,
) -> Report:
    """Read the logs, streaming, into a report. With a `marker`, each session's records
    are also turned into timeline marks, and `on_closed` takes each session kept by the
    filters once it has ended (or at the end of the input)."""
    filters = filters or Filters()
    report = Report(turn_limit=turns)
    open_rows: dict[str, SessionRow] = {}
    for line in _lines(paths, stdin or sys.stdin.buffer):
        if line is None:
            report.skipped += 1  # longer than any record earshot writes
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            report.skipped += bool(line.strip())
            continue
        if (line.count(b"{") + line.count(b"[") > MAX_NESTING) and _too_deep(record):
            report.skipped += 1
            continue
        conn = record.get("conn") if isinstance(record, dict) else None
        if not isinstance(conn, str) or not isinstance(record.get("event"), str):
            report.skipped += not isinstance(record, dict) or "event" not in record
            continue
        if conn.startswith("h_"):
            continue  # a REST exchange, not a session
        row = open_rows.get(conn)
        if row is None:
            row = open_rows[conn] = SessionRow(conn=_str(conn) or "?")
        row.add(record, marker)
        if turns and record["event"] == "realtime.turn" and filters.keep_turn(record):
            report.add_turn(record)
        if record["event"] == "ws.close":
            del open_rows[conn]
            _closed(row, filters, report, on_closed)
    for row in open_rows.values():
        _closed(row, filters, report, on_closed)
    report.rows.sort(key=lambda row: row.start or "")
    return report


def _closed(
    row: SessionRow,
    filters: Filters,
    report: Report,
    on_closed: Callable[[SessionRow], None] | None,
) -> None:
    if filters.keep(row):
        report.rows.append(row)
        if on_closed is not None:
            on_closed(row)
    row.marks = []
