"""
The timeline page of `earshot report --html`: each session drawn as lanes of marks (who
spoke when, each turn's latency, tool calls, the model's audio and words, interruptions,
the close), one self-contained HTML file.

A session's section is drawn as soon as the session ends and kept in a temporary file
(`Sections`); the page is then written in pieces. So the memory a page costs follows
the sessions open at once, however many sessions and marks the log holds.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any, Final

import jinja2
from markupsafe import Markup

from proxy.report import Report, SessionRow, num

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


def mark(record: dict[str, Any]) -> list[tuple[str, str, float, float, str]]:
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
        duration = num(record.get("duration_ms")) or 0.0
        label = f"{_short(record.get('name'), 30)} {duration:.0f} ms"
        return [("tool", "tool", end - duration, end, label)]
    if event == "realtime.turn":
        out = []
        start = _epoch_ms(record.get("start_ts"))
        latency = num(record.get("latency_ms"))
        if start is not None and latency is not None:
            out.append(("turn", "latency", start, start + latency, f"{latency:.0f} ms"))
        if record.get("interrupted"):
            out.append(("turn", "interrupt", end, end, "interrupted"))
        return out
    if event == "realtime.interruption":
        heard, made = num(record.get("heard_ms")), num(record.get("generated_ms"))
        said = f"cut at {heard:.0f} ms" if heard is not None else "cut"
        return [("turn", "interrupt", end, end, f"{said} of {made:.0f}" if made else said)]
    if event == "realtime.undecodable":
        return [("error", "error", end, end, "undecodable")]
    if event == "ws.close":
        return [("error", "close", end, end, f"closed by {record.get('closed_by')}")]
    return []


def _page_session(row: SessionRow, anchor: str) -> dict[str, Any]:
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
        "anchor": anchor,
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


def _environment() -> jinja2.Environment:
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

    env.globals.update(
        ms=ms, secs=secs, usd=usd, when=when,
        lanes=[{"key": key, "name": name} for key, name in LANES],
    )  # fmt: skip
    return env


class Sections:
    """The timeline sections of the sessions read so far, each drawn when its session
    ended and kept in a temporary file, not in memory: a page of many long sessions
    costs the memory of the sessions open at once."""

    def __init__(self) -> None:
        self._env = _environment()
        self._template = self._env.get_template("report_session.html.j2")
        self._spool: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._spans: list[tuple[int, int]] = []

    def add(self, row: SessionRow) -> None:
        """Draw one session's section, and let its marks go."""
        row.anchor = f"s{len(self._spans)}"
        start = self._spool.seek(0, 2)
        self._spool.write(self._template.render(s=_page_session(row, row.anchor)))
        self._spans.append((start, self._spool.tell()))
        row.marks = []

    def __iter__(self) -> Iterator[Markup]:
        for start, end in self._spans:
            self._spool.seek(start)
            yield Markup(self._spool.read(end - start))  # drawn escaped by the session template

    def close(self) -> None:
        """Drop the temporary file."""
        self._spool.close()

    def __enter__(self) -> Sections:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def write_html(report: Report, sections: Sections, out: IO[str]) -> None:
    """The page, written to `out` in pieces: the summary table of every row, then each
    session's section as it was drawn (in the order the sessions ended). One
    self-contained page: no network, no external assets, every value from the log
    escaped."""
    template = sections._env.get_template("report.html.j2")
    rows = [{"anchor": row.anchor, "f": row.figures()} for row in report.rows]
    for piece in template.generate(totals=report.totals(), sessions=rows, sections=sections):
        out.write(piece)


def html(report: Report, sections: Sections) -> str:
    """The page as one string (for tests and small logs)."""
    out = io.StringIO()
    write_html(report, sections, out)
    return out.getvalue()
