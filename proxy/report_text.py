"""
`earshot report`'s output: the sessions table and the slowest turns as text, columns as
wide as their widest figure (never cut), and both as JSON for scripts. What the figures
are is `proxy.report`; the timeline page is `proxy.timeline`.
"""

from __future__ import annotations

import orjson

from proxy.report import Report


def _fmt(value: object, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def _when(ts: str | None) -> str:
    """`2026-12-02T14:38:32.77Z` as `12-02 14:38:32` (UTC)."""
    return f"{ts[5:10]} {ts[11:19]}" if ts and len(ts) >= 19 else "-"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _columns(head: list[str], rows: list[list[str]], left: int) -> list[str]:
    """Rows laid out in columns as wide as their widest cell: nothing is ever cut. The
    first `left` columns are left-aligned (words), the rest right-aligned (figures)."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    out = []
    for r in [head, *rows]:
        cells = [
            c.ljust(w) if i < left or i == len(head) - 1 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append(" ".join(cells).rstrip())
    return out


def table(report: Report) -> str:
    """The report as a terminal table: each column as wide as it needs, figures whole."""
    head = ["session", "start (UTC)", "model", "dur s", "turns", "p50 ms", "p95 ms",
            "max ms", "int", "tools", "tokens in/out", "cost $", "bad", "close"]  # fmt: skip
    rows, notes = [], {}
    for row in report.rows:
        f = row.figures()
        lat = f["latency_ms"]
        tokens = f["tokens"]
        tokens_in = tokens["input_audio"] + tokens["input_text"]
        closed = f"{f['closed_by'] or '?'} {_fmt(f['code'])}" if f["closed_by"] else "open"
        dur = f["duration_ms"] / 1000 if f["duration_ms"] is not None else None
        rows.append(
            [f["session"] or f["conn"], _when(f["start"]), f["model"] or "-",
             _fmt(dur, ".1f"), str(f["turns"]), _fmt(lat["p50"], ".0f"), _fmt(lat["p95"], ".0f"),
             _fmt(lat["max"], ".0f"), str(f["interruptions"]), str(f["tool_calls"]),
             f"{tokens_in}/{tokens['output_audio'] + tokens['output_text']}",
             _fmt(f["cost_usd"], ".4f"), str(f["undecodable"]), closed]
        )  # fmt: skip
        if f["slowest_tool"]:
            slow = f["slowest_tool"]
            notes[len(rows) - 1] = f"  slowest tool: {slow['name']} {slow['duration_ms']:.0f} ms"
    laid = _columns(head, rows, left=3)
    lines = [laid[0], "-" * len(laid[0])]
    for i, line in enumerate(laid[1:]):
        lines.append(line)
        if i in notes:
            lines.append(notes[i])
    t = report.totals()
    lat = t["latency_ms"]
    lines += [
        "-" * len(laid[0]),
        f"{_plural(t['sessions'], 'session')}, {_plural(t['turns'], 'turn')}; latency p50 "
        f"{_fmt(lat['p50'], '.0f')} ms, p95 {_fmt(lat['p95'], '.0f')} ms, max "
        f"{_fmt(lat['max'], '.0f')} ms",
        f"{_plural(t['interruptions'], 'interruption')}, {_plural(t['tool_calls'], 'tool call')}, "
        f"cost ${_fmt(t['cost_usd'], '.4f')}, {_plural(t['undecodable'], 'undecodable frame')}",
        f"{_plural(t['skipped_lines'], 'line')} skipped: not earshot records",
    ]
    return "\n".join(lines) + "\n"


def turns_table(report: Report) -> str:
    """`--turns`: the slowest turns first, with their session and response ids."""
    head = ["user wait ms", "latency ms", "session", "response", "start (UTC)", "model",
            "trigger", "status", "cut", "cost $"]  # fmt: skip
    rows = [
        [_fmt(t["user_wait_ms"], ".0f"), _fmt(t["latency_ms"], ".0f"),
         t["session"] or t["conn"] or "-", t["response_id"] or "-", _when(t["start"]),
         t["model"] or "-", t["trigger"] or "-", t["status"] or "-",
         "yes" if t["interrupted"] else "no", _fmt(t["cost_usd"], ".4f")]
        for t in report.slowest_turns()
    ]  # fmt: skip
    laid = _columns(head, rows, left=0)
    footer = f"{_plural(len(rows), 'turn')}, slowest first"
    return "\n".join([laid[0], "-" * len(laid[0]), *laid[1:], footer]) + "\n"


def turns_json(report: Report) -> bytes:
    """`--turns --json`: `{"turns": [...]}`, slowest first."""
    return orjson.dumps(
        {"turns": report.slowest_turns()}, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
    )


def as_json(report: Report) -> bytes:
    """The report for scripts: `{"sessions": [...], "totals": {...}}`."""
    return orjson.dumps(
        {"sessions": [r.figures() for r in report.rows], "totals": report.totals()},
        option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE,
    )
