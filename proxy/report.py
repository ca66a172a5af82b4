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
import math
import statistics
import sys
from collections.abc import Callable, Iterable, Iterator
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

# What one record draws on a timeline: (lane, css class, start ms, end ms, label).
Marker = Callable[[dict[str, Any]], list[tuple[str, str, float, float, str]]]


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
            title = orjson.dumps(record).decode()[:2000]
            self.marks += [(*m, title) for m in marker(record)]
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
            "cost_usd": round(self.cost_usd, 6) if self.cost_usd is not None else None,
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
    """Which sessions to report: by connection id, start time (RFC 3339) and model."""

    conn: str | None = None
    since: str | None = None
    model: str | None = None

    def keep(self, row: SessionRow) -> bool:
        """Whether `row` passes every filter given."""
        return (
            (self.conn is None or row.conn == self.conn)
            and (self.since is None or (row.start or "") >= self.since)
            and (self.model is None or row.model == self.model)
        )


@attrs.define
class Report:
    """Every session read, by start time, and the count of lines that were not earshot
    records."""

    rows: list[SessionRow] = attrs.field(factory=list)
    skipped: int = 0

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
            "cost_usd": round(sum(costs), 6) if costs else None,
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
) -> Report:
    """Read the logs, streaming, into a report. With a `marker`, each session's records
    are also turned into timeline marks, and `on_closed` takes each session kept by the
    filters once it has ended (or at the end of the input)."""
    filters = filters or Filters()
    report = Report()
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


def _fmt(value: object, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def _when(ts: str | None) -> str:
    """`2026-12-02T14:38:32.77Z` as `12-02 14:38` (UTC)."""
    return f"{ts[5:10]} {ts[11:16]}" if ts and len(ts) >= 16 else "-"


def table(report: Report) -> str:
    """The report as a terminal table, at most 100 columns wide."""
    head = (
        f"{'start (UTC)':11} {'model':12} {'dur s':>5} {'turns':>5} {'p50ms':>5} {'p95ms':>5} "
        f"{'maxms':>5} {'int':>3} {'tools':>5} {'tok i/o':>9} {'cost $':>7} {'bad':>3} close"
    )
    rule = "-" * 100
    lines = [head, rule]
    for row in report.rows:
        f = row.figures()
        lat = f["latency_ms"]
        tokens = f["tokens"]
        tokens_in = tokens["input_audio"] + tokens["input_text"]
        tok = f"{tokens_in}/{tokens['output_audio'] + tokens['output_text']}"
        closed = f"{f['closed_by'] or '?'} {_fmt(f['code'])}" if f["closed_by"] else "open"
        dur = f["duration_ms"] / 1000 if f["duration_ms"] is not None else None
        lines.append(
            f"{_when(f['start']):11} {(f['model'] or '-')[:12]:12} {_fmt(dur, '.0f'):>5} "
            f"{f['turns']:>5} {_fmt(lat['p50'], '.0f'):>5} {_fmt(lat['p95'], '.0f'):>5} "
            f"{_fmt(lat['max'], '.0f'):>5} {f['interruptions']:>3} {f['tool_calls']:>5} "
            f"{tok[:9]:>9} {_fmt(f['cost_usd'], '.4f'):>7} {f['undecodable']:>3} {closed[:13]}"
        )
        if f["slowest_tool"]:
            slow = f["slowest_tool"]
            lines.append(f"{'':12}slowest tool: {slow['name'][:40]} {slow['duration_ms']:.0f} ms")
    t = report.totals()
    lat = t["latency_ms"]
    lines += [
        rule,
        f"{t['sessions']} sessions, {t['turns']} turns; latency p50 {_fmt(lat['p50'], '.0f')} ms,"
        f" p95 {_fmt(lat['p95'], '.0f')} ms, max {_fmt(lat['max'], '.0f')} ms",
        f"{t['interruptions']} interruptions, {t['tool_calls']} tool calls, cost "
        f"${_fmt(t['cost_usd'], '.4f')}, {t['undecodable']} undecodable frames",
        f"{t['skipped_lines']} lines skipped: not earshot records",
    ]
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> bytes:
    """The report for scripts: `{"sessions": [...], "totals": {...}}`."""
    return orjson.dumps(
        {"sessions": [r.figures() for r in report.rows], "totals": report.totals()},
        option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE,
    )
