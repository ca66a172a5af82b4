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
import statistics
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import IO, Any, Final

import attrs
import jinja2
import orjson

from proxy.pricing import token_counts


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
    # With a timeline: what each record draws, and the record itself for the hover.
    timeline: bool = False
    marks: list[tuple[str, str, float, float, str, str]] = attrs.field(factory=list)

    def add(self, record: dict[str, Any]) -> None:
        """Fold one record of this session in."""
        event = record.get("event")
        if self.timeline and len(self.marks) < _MAX_MARKS:
            title = orjson.dumps(record).decode()[:2000]
            self.marks += [(*m, title) for m in _mark(record)]
        self.start = self.start or _str(record.get("ts"))
        self.model = self.model or _str(record.get("model"))
        self.session = self.session or _str(record.get("session"))
        if event == "realtime.turn":
            self.turns += 1
            if isinstance(record.get("latency_ms"), int | float):
                self.latencies.append(float(record["latency_ms"]))
            for kind, n in token_counts(record.get("usage")).items():
                self.tokens[kind] = self.tokens.get(kind, 0) + n
            if isinstance(record.get("cost_usd"), int | float):
                self.cost_usd = (self.cost_usd or 0.0) + record["cost_usd"]
        elif event == "realtime.interruption":
            self.interruptions += 1
        elif event == "realtime.tool":
            self.tool_calls += 1
            duration = record.get("duration_ms")
            if isinstance(duration, int | float) and (
                self.slowest_tool is None or duration > self.slowest_tool[1]
            ):
                self.slowest_tool = (_str(record.get("name")) or "?", float(duration))
        elif event == "realtime.undecodable":
            self.undecodable += 1
        elif event == "ws.close":
            self.duration_ms = _num(record.get("duration_ms"))
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
    return value if isinstance(value, str) else None


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


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


def _lines(paths: Iterable[str], stdin: IO[bytes]) -> Iterator[bytes]:
    for path in paths:
        if path == "-":
            yield from stdin
        elif path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                yield from f
        else:
            with open(path, "rb") as f:
                yield from f


def build(
    paths: Iterable[str],
    filters: Filters | None = None,
    stdin: IO[bytes] | None = None,
    *,
    timeline: bool = False,
) -> Report:
    """Read the logs, streaming, into a report (with each session's timeline marks when
    a page is to be drawn)."""
    filters = filters or Filters()
    report = Report()
    open_rows: dict[str, SessionRow] = {}
    for line in _lines(paths, stdin or sys.stdin.buffer):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            report.skipped += bool(line.strip())
            continue
        conn = record.get("conn") if isinstance(record, dict) else None
        if not isinstance(conn, str) or not isinstance(record.get("event"), str):
            report.skipped += not isinstance(record, dict) or "event" not in record
            continue
        if conn.startswith("h_"):
            continue  # a REST exchange, not a session
        row = open_rows.get(conn)
        if row is None:
            row = open_rows[conn] = SessionRow(conn=conn, timeline=timeline)
        row.add(record)
        if record["event"] == "ws.close":
            del open_rows[conn]
            if filters.keep(row):
                report.rows.append(row)
    report.rows += [row for row in open_rows.values() if filters.keep(row)]
    report.rows.sort(key=lambda row: row.start or "")
    return report


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


# --- the timeline page ---------------------------------------------------------------

_MAX_MARKS: Final = 5000  # marks drawn per session
LANES: Final = (
    ("speech", "user speech"),
    ("client-audio", "client audio"),
    ("model-audio", "model audio"),
    ("text", "text, transcripts"),
    ("tool", "tool calls"),
    ("turn", "turns"),
    ("error", "errors, closes"),
)


def _epoch_ms(ts: object) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return None


def _short(text: object, n: int = 60) -> str:
    s = text if isinstance(text, str) else ""
    return s if len(s) <= n else s[: n - 1] + "…"


def _mark(record: dict[str, Any]) -> list[tuple[str, str, float, float, str]]:
    """What one record draws: (lane, css class, start ms, end ms, label)."""
    event = record.get("event")
    end = _epoch_ms(record.get("ts"))
    if end is None:
        return []
    kind = str(record.get("type", ""))
    if event == "realtime.summary":
        start = _epoch_ms(record.get("first_ts"))
        start = end if start is None else start
        if record.get("direction") == "client":
            return [("client-audio", "client-audio", start, end, "")]
        if "audio.delta" in kind:
            return [("model-audio", "model-audio", start, end, "")]
        return [("text", "text", start, end, "")]
    if event == "realtime.event":
        payload: dict[str, Any] = (
            record["payload"] if isinstance(record.get("payload"), dict) else {}
        )
        if kind == "input_audio_buffer.speech_started":
            return [("speech", "speech-start", end, end, "")]
        if kind == "input_audio_buffer.speech_stopped":
            return [("speech", "speech-stop", end, end, "")]
        if kind == "error":
            return [("error", "error", end, end, "error")]
        said = payload.get("transcript") or payload.get("text")
        if kind.endswith((".done", ".completed")) and isinstance(said, str) and said:
            return [("text", "text", end, end, _short(said))]
        return []
    if event == "realtime.tool":
        duration = _num(record.get("duration_ms")) or 0.0
        label = f"{_short(record.get('name'), 30)} {duration:.0f} ms"
        return [("tool", "tool", end - duration, end, label)]
    if event == "realtime.turn":
        out = []
        start = _epoch_ms(record.get("start_ts"))
        latency = _num(record.get("latency_ms"))
        if start is not None and latency is not None:
            out.append(("turn", "latency", start, start + latency, f"{latency:.0f} ms"))
        if record.get("interrupted"):
            out.append(("turn", "interrupt", end, end, "interrupted"))
        return out
    if event == "realtime.interruption":
        heard, made = _num(record.get("heard_ms")), _num(record.get("generated_ms"))
        said = f"cut at {heard:.0f} ms" if heard is not None else "cut"
        return [("turn", "interrupt", end, end, f"{said} of {made:.0f}" if made else said)]
    if event == "realtime.undecodable":
        return [("error", "error", end, end, "undecodable")]
    if event == "ws.close":
        return [("error", "close", end, end, f"closed by {record.get('closed_by')}")]
    return []


def _page_session(row: SessionRow, index: int) -> dict[str, Any]:
    """A session's marks placed on its timeline (x in px at the page's first zoom)."""
    marks = row.marks
    t0 = min((m[2] for m in marks), default=0.0)
    t1 = max((m[3] for m in marks), default=t0)
    # Speech: pair each start with the next stop into a span.
    drawn: list[tuple[str, str, float, float, str, str]] = []
    started: tuple[float, str] | None = None
    for lane, css, start, end, label, title in marks:
        if css == "speech-start":
            started = (start, title)
        elif css == "speech-stop":
            begin = started[0] if started else start
            drawn.append(("speech", "speech", begin, end, "", title))
            started = None
        else:
            drawn.append((lane, css, start, end, label, title))
    span = max(1.0, t1 - t0)
    width = int(min(4000, max(900, span / 10)))  # 10 ms a pixel, within bounds
    scale = width / span
    step = next(
        s for s in (100, 250, 500, 1000, 2000, 5000, 10000, 30000, 60000, 1e12) if span / s <= 12
    )
    ticks = [
        {"x": round(t * scale, 1), "t": t, "label": f"{t / 1000:g} s"}
        for t in (i * step for i in range(int(span // step) + 1))
    ]
    return {
        "anchor": f"s{index}",
        "f": row.figures(),
        "width": width,
        "span_ms": span,
        "ticks": ticks,
        "marks": [
            {
                "lane": lane, "css": css, "label": label, "title": title,
                "t": round(start - t0, 1), "d": round(max(0.0, end - start), 1),
                "x": round((start - t0) * scale, 1), "w": round(max(2.0, (end - start) * scale), 1),
            }
            for lane, css, start, end, label, title in drawn
        ],
    }  # fmt: skip


def html(report: Report) -> str:
    """The report as one self-contained page: no network, no external assets, every
    value from the log escaped."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("proxy", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )

    def ms(value: object) -> str:
        return f"{value:.0f} ms" if isinstance(value, int | float) else "-"

    def secs(value: object) -> str:
        return f"{value / 1000:.1f} s" if isinstance(value, int | float) else "-"

    def usd(value: object) -> str:
        return f"${value:.4f}" if isinstance(value, int | float) else "-"

    def when(ts: object) -> str:
        return f"{ts[:10]} {ts[11:19]}" if isinstance(ts, str) and len(ts) >= 19 else "-"

    template = env.get_template("report.html.j2")
    return template.render(
        when=when,
        totals=report.totals(),
        sessions=[_page_session(row, i) for i, row in enumerate(report.rows)],
        lanes=[{"key": key, "name": name} for key, name in LANES],
        ms=ms,
        secs=secs,
        usd=usd,
    )
