"""
The timeline page of `earshot report --html`: each session drawn where things happened
for the user, one self-contained HTML file.

The turn records say where: the user's audio ends at the turn's start mark, and its
`input_audio_ms` runs back from there (VAD's prefix padding, the speech, the silence
window, told apart); the model's audio plays from its first delta for `heard_ms` (the
rest, generated but never heard, is drawn faded); the wait runs from the start mark to
the first output (and, across tool calls, from the user's own input). Client audio is
drawn at its audio position from its first frame; user and model words have lanes of
their own, the words on hover. Labels never overlap (one that would is left to its
mark's hover), and the ticks follow the zoom from milliseconds to minutes.

A session's section is drawn as soon as the session ends and kept in a temporary file
(`Sections`); the page is then written in pieces. So the memory a page costs follows
the sessions open at once, however many sessions and marks the log holds.
"""

from __future__ import annotations

import io
import math
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
    ("user-text", "user words"),
    ("wait", "waits"),
    ("model-audio", "model audio heard"),
    ("model-text", "model words"),
    ("tool", "tools"),
    ("event", "errors, close"),
)
LEFT: Final = 130  # px: the lane names' column
RIGHT: Final = 240  # px after the last mark: room for its label
CHAR_PX: Final = 6.4  # px per character of an 11 px label (system-ui): a label's width
MIN_TICK_PX: Final = 80  # px between ticks at least
# Tick steps in ms: 1-2-5 to a second, then steps a clock reads (15 s, 1 min, 5 min ...).
_STEPS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 15_000,
                 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000,
                 7_200_000, 21_600_000, 86_400_000)  # fmt: skip
_LONG_TURNS: Final = 4  # sessions with more turns than this get a turn list beside them

Mark = tuple[str, str, float, float, str, str]


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


def _words(text: object) -> str:
    return text[:2000] if isinstance(text, str) else ""


def mark(record: dict[str, Any]) -> list[Mark]:
    """What one record draws: (lane, css class, start ms, end ms, label, title)."""
    event = record.get("event")
    end = _epoch_ms(record.get("ts"))
    if end is None:
        return []
    if event == "realtime.turn":
        return _turn_marks(record)
    kind = str(record.get("type", ""))
    if event == "realtime.summary":
        start = _epoch_ms(record.get("first_ts"))
        start = end if start is None else start
        audio_ms = num(record.get("ms"))
        if record.get("direction") == "client" and audio_ms is not None:
            # At its audio position: from the first frame, as long as the audio it holds
            # (not until the summary was written); audio sent faster than it plays ends
            # where it arrived.
            return [("client-audio", "client-audio", start, min(start + audio_ms, end), "", "")]
        if "input_audio_transcription" in kind:
            return [("user-text", "user-text", start, end, "", "")]
        if "function_call_arguments" in kind or "mcp_call_arguments" in kind:
            return [("tool", "arguments", start, end, "arguments", "")]
        if "text" in kind or "transcript" in kind:
            return [("model-text", "model-text", start, end, "", "")]
        return []  # the model's audio is drawn from its turn, over its playing time
    if event == "realtime.event":
        payload: dict[str, Any] = (
            record["payload"] if isinstance(record.get("payload"), dict) else {}
        )
        if kind == "error":
            return [("event", "error", end, end, "error", "")]
        said = payload.get("transcript") or payload.get("text")
        if isinstance(said, str) and said and kind.endswith((".done", ".completed")):
            lane = "user-text" if "input_audio_transcription" in kind else "model-text"
            return [(lane, lane, end, end, _short(said, 40), _words(said))]
        return []
    if event == "realtime.tool":
        duration = num(record.get("duration_ms")) or 0.0
        label = f"{_short(record.get('name'), 30)} {duration:.0f} ms"
        return [("tool", "tool", end - duration, end, label, "")]
    if event == "realtime.undecodable":
        return [("event", "error", end, end, "undecodable", "")]
    if event == "ws.close":
        return [("event", "close", end, end, f"closed by {record.get('closed_by')}", "")]
    return []


def _turn_marks(record: dict[str, Any]) -> list[Mark]:
    """A turn: the user's audio before its start mark, the wait, what the user heard."""
    start = _epoch_ms(record.get("start_ts"))
    if start is None:
        return []
    out: list[Mark] = []
    heard_in = num(record.get("input_audio_ms"))
    if heard_in is not None and record.get("trigger") == "vad":
        silence = num(record.get("silence_ms")) or 0.0
        speech = num(record.get("speech_ms"))
        padding = heard_in - silence - speech if speech is not None else 0.0
        speech = heard_in - silence - padding if speech is None else speech
        speech_end = start - silence
        out += [
            ("speech", "padding", start - heard_in, start - heard_in + padding, "", ""),
            ("speech", "speech", speech_end - speech, speech_end, f"{speech:.0f} ms", ""),
            ("speech", "silence", speech_end, start, "", ""),
        ]
        words = record.get("input_transcript")
        if isinstance(words, str) and words:
            out.append(
                ("user-text", "user-text", speech_end - speech, speech_end, _short(words, 40),
                 _words(words))
            )  # fmt: skip
    latency = num(record.get("latency_ms"))
    if latency is not None:
        first = start + latency
        wait = num(record.get("user_wait_ms"))
        if wait is not None and wait > latency + 1:
            out.append(("wait", "user-wait", first - wait, first, f"user waited {wait:.0f} ms", ""))
        out.append(("wait", "latency", start, first, f"{latency:.0f} ms", ""))
    first_audio = num(record.get("first_audio_ms"))
    made = num(record.get("output_audio_ms")) or 0.0
    if first_audio is not None and made > 0:
        played = start + first_audio
        heard = num(record.get("heard_ms"))
        heard = made if heard is None else max(0.0, min(heard, made))
        out.append(("model-audio", "model-audio", played, played + heard, "", ""))
        if heard < made:
            out.append(
                ("model-audio", "unheard", played + heard, played + made,
                 f"cut at {heard:.0f} of {made:.0f} ms", "")
            )  # fmt: skip
    return out


def ticks(span_ms: float, width_px: float) -> list[dict[str, Any]]:
    """Tick marks for a span drawn `width_px` wide: the smallest step at least
    `MIN_TICK_PX` apart, labelled in ms, s or m:ss as the step calls for."""
    scale = width_px / max(span_ms, 1.0)
    step = next((s for s in _STEPS if s * scale >= MIN_TICK_PX), _STEPS[-1])
    return [
        {"x": round(t * scale, 1), "t": t, "label": tick_label(t, step)}
        for t in (i * step for i in range(int(span_ms // step) + 1))
    ]


def tick_label(t: float, step: float) -> str:
    """A tick's label: `250 ms` below a second's step, `1.5 s` below a minute's, `2:30`."""
    if step < 1000:
        return f"{t:.0f} ms" if t < 1000 else f"{t / 1000:g} s"
    if step < 60_000 and t < 60_000:
        return f"{t / 1000:g} s"
    return f"{int(t // 60_000)}:{int(t % 60_000 // 1000):02d}"


def label_width(label: str) -> float:
    """A label's width in px (an estimate the page's script uses too)."""
    return len(label) * CHAR_PX + 6


def place_labels(marks: list[dict[str, Any]]) -> None:
    """Show a mark's label only where it runs into neither the previous label shown in
    its lane nor the next mark there; the others are left to their mark's hover
    (`shown` false). The page's script does the same on every zoom."""
    by_lane: dict[str, list[dict[str, Any]]] = {}
    for m in marks:
        by_lane.setdefault(m["lane"], []).append(m)
    for lane in by_lane.values():
        lane.sort(key=lambda m: m["x"])
        starts = [m["x"] for m in lane]
        shown_end = -math.inf
        for i, m in enumerate(lane):
            m["shown"] = False
            if not m["label"]:
                continue
            x = m["x"] + 2
            after = next((s for s in starts[i + 1 :] if s > m["x"] + 1), math.inf)
            if x >= shown_end and x + m["lw"] <= after:
                m["shown"] = True
                shown_end = x + m["lw"]


def _page_session(row: SessionRow, anchor: str) -> dict[str, Any]:
    """A session's marks placed on its timeline (x in px at the page's first zoom)."""
    marks = row.marks
    t0 = min((m[2] for m in marks), default=0.0)
    t1 = max((m[3] for m in marks), default=t0)
    span = max(1.0, t1 - t0)
    width = int(min(4000, max(900, span / 10)))  # 10 ms a pixel, within bounds
    scale = width / span
    drawn = [
        {
            "lane": lane, "css": css, "label": label, "title": title,
            "t": round(start - t0, 1), "d": round(max(0.0, end - start), 1),
            "x": round((start - t0) * scale, 1), "w": round(max(2.0, (end - start) * scale), 1),
            "lw": round(label_width(label), 1),
            "behind": css == "user-wait",
        }
        for lane, css, start, end, label, title in marks
    ]  # fmt: skip
    place_labels(drawn)
    turns = [m for m in drawn if m["css"] == "latency"]
    return {
        "anchor": anchor,
        "f": row.figures(),
        "width": width,
        "span_ms": span,
        "ticks": ticks(span, width),
        "marks": drawn,
        "turn_list": [
            {"n": i + 1, "t": m["t"], "x": m["x"], "label": m["label"]} for i, m in enumerate(turns)
        ]
        if len(turns) > _LONG_TURNS
        else [],
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("proxy", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )

    def ms(value: object) -> str:
        return f"{value:.0f} ms" if isinstance(value, int | float) else "-"

    def secs(value: object) -> str:
        if not isinstance(value, int | float):
            return "-"
        if value < 1000:
            return f"{value:.0f} ms"
        if value < 60_000:
            return f"{value / 1000:.1f} s"
        return f"{int(value // 60_000)}:{int(value % 60_000 // 1000):02d} min"

    def plural(n: object, word: str) -> str:
        return f"{n} {word}" if n == 1 else f"{n} {word}s"

    def usd(value: object) -> str:
        return f"${value:.4f}" if isinstance(value, int | float) else "-"

    def when(ts: object) -> str:
        return f"{ts[:10]} {ts[11:19]}" if isinstance(ts, str) and len(ts) >= 19 else "-"

    def clock(t: float) -> str:
        return f"{int(t // 60_000)}:{t % 60_000 / 1000:04.1f}"

    env.globals.update(
        ms=ms, secs=secs, usd=usd, when=when, clock=clock, plural=plural, left=LEFT,
        right=RIGHT, char_px=CHAR_PX, min_tick_px=MIN_TICK_PX, steps=list(_STEPS),
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
