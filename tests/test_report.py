"""
`earshot report`: sessions at a glance from earshot's own log, streamed, whatever else
the log holds.
"""

from __future__ import annotations

import gzip
import io
import itertools
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy import cli
from proxy.report import Filters, build
from proxy.report_text import as_json, table
from proxy.timeline import LEFT, Sections, html, mark, ticks
from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream
from tests.helpers import lockstep, recorded_sessions, scripted_session, sessions_ended


def _record(conn: str, event: str, ts: str = "2026-12-01T10:00:00.000000Z", **fields: Any) -> bytes:
    return orjson.dumps({"ts": ts, "level": "info", "event": event, "conn": conn, **fields})


def _session(conn: str, model: str, latencies: list[float], ts: str) -> list[bytes]:
    usage = {
        "input_token_details": {"audio_tokens": 10},
        "output_token_details": {"audio_tokens": 20},
    }
    lines = [_record(conn, "ws.open", ts, model=model)]
    for i, lat in enumerate(latencies):
        lines.append(
            _record(
                conn,
                "realtime.turn",
                ts,
                model=model,
                response_id=f"r{i}",
                latency_ms=lat,
                usage=usage,
                cost_usd=0.001,
            )
        )
    lines += [
        _record(conn, "realtime.tool", ts, model=model, name="lookup", duration_ms=120.0),
        _record(conn, "realtime.tool", ts, model=model, name="slow_db", duration_ms=900.5),
        _record(conn, "realtime.interruption", ts, model=model),
        _record(conn, "realtime.undecodable", ts, model=model),
        _record(
            conn, "ws.close", ts, model=model, closed_by="upstream", code=1011, duration_ms=61000.0
        ),
    ]
    return lines


def _interleaved() -> bytes:
    a = _session("c_a", "gpt-realtime", [300.0, 500.0, 1200.0], "2026-12-01T10:00:00.000000Z")
    b = _session("c_b", "gpt-realtime-mini", [250.0], "2026-12-01T11:00:00.000000Z")
    lines = [x for pair in zip(a, b, strict=False) for x in pair] + a[len(b) :]
    garbage = [b"not json at all", b'{"some":"other program"}', b"[1,2,3]", b""]
    rest = lines[:3] + garbage + lines[3:]
    return b"\n".join(rest) + b'\n{"ts":"2026-12-01T1'  # a truncated last line


def test_every_figure_comes_from_the_records(tmp_path: Path) -> None:
    """
    Two interleaved sessions, garbage lines and a truncated last line: each session's
    figures are its own records' (latency p50/p95/max, interruptions, tools and the
    slowest, tokens, cost, undecodable, how it closed); the junk is counted, not fatal.
    """
    path = tmp_path / "earshot.jsonl"
    path.write_bytes(_interleaved())

    report = build([str(path)])
    a, b = (r.figures() for r in report.rows)

    assert ("c_a", "gpt-realtime", 3) == (a["conn"], a["model"], a["turns"])
    assert {"p50": 500.0, "p95": 1200.0, "max": 1200.0} == a["latency_ms"]
    assert (1, 2, {"name": "slow_db", "duration_ms": 900.5}) == (
        a["interruptions"],
        a["tool_calls"],
        a["slowest_tool"],
    )
    assert {"input_audio": 30, "input_text": 0, "output_audio": 60, "output_text": 0} == a["tokens"]
    assert (0.003, 1, "upstream", 1011, 61000.0) == (
        a["cost_usd"],
        a["undecodable"],
        a["closed_by"],
        a["code"],
        a["duration_ms"],
    )
    assert ("c_b", 1, 0.001) == (b["conn"], b["turns"], b["cost_usd"])
    totals = report.totals()
    assert (2, 4, 0.004, 4) == (
        totals["sessions"],
        totals["turns"],
        totals["cost_usd"],
        totals["skipped_lines"],
    )


def test_gz_and_stdin_read_the_same(tmp_path: Path) -> None:
    """
    A `.gz` file and standard input give the report the plain file gives.
    """
    data = _interleaved()
    plain, packed = tmp_path / "a.jsonl", tmp_path / "a.jsonl.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))

    expected = as_json(build([str(plain)]))

    assert expected == as_json(build([str(packed)]))
    assert expected == as_json(build(["-"], stdin=io.BytesIO(data)))


@pytest.mark.parametrize(
    ("filters", "conns"),
    [
        (Filters(conn="c_b"), ["c_b"]),
        (Filters(since="2026-12-01T10:30:00Z"), ["c_b"]),
        (Filters(model="gpt-realtime"), ["c_a"]),
    ],
)
def test_filters(tmp_path: Path, filters: Filters, conns: list[str]) -> None:
    """
    `--conn`, `--since` and `--model` select sessions.
    """
    path = tmp_path / "earshot.jsonl"
    path.write_bytes(_interleaved())

    assert conns == [r.conn for r in build([str(path)], filters).rows]


async def test_the_golden_session(
    make_proxy: ProxyFactory, sink: MemorySink, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    The golden session's script through the proxy, its log reported: one session, one
    turn with its usage and cost, closed by the client; the table fits 100 columns and
    the JSON schema is stable.
    """
    await scripted_session(await make_proxy())
    log = tmp_path / "earshot.jsonl"
    log.write_bytes(b"".join(sink.lines))

    assert 0 == cli.main(["report", "--json", str(log)])
    out = orjson.loads(capsys.readouterr().out)
    assert 0 == cli.main(["report", str(log)])
    text = capsys.readouterr().out

    (session,) = out["sessions"]
    assert [
        "conn",
        "session",
        "start",
        "model",
        "duration_ms",
        "turns",
        "latency_ms",
        "interruptions",
        "tool_calls",
        "slowest_tool",
        "tokens",
        "cost_usd",
        "undecodable",
        "closed_by",
        "code",
    ] == list(session)
    assert ("sess_FAKE1", "gpt-realtime", 1, 0.000312, "client", 1000) == (
        session["session"],
        session["model"],
        session["turns"],
        session["cost_usd"],
        session["closed_by"],
        session["code"],
    )
    tokens = session["tokens"]
    tok = f"{tokens['input_audio'] + tokens['input_text']}/{tokens['output_audio'] + tokens['output_text']}"
    (line,) = [x for x in text.splitlines() if x.startswith("sess_FAKE1")]
    assert ["sess_FAKE1", "gpt-realtime", tok, "0.0003", "client", "1000"] == [
        w
        for w in line.split()
        if w in ("sess_FAKE1", "gpt-realtime", tok, "0.0003", "client", "1000")
    ]


def test_no_figure_or_name_is_ever_cut(tmp_path: Path) -> None:
    """
    `gpt-realtime-mini` and 26460/5100 tokens are printed whole (they were cut to
    `gpt-realtime` and `26460/510`): columns widen to their content. Times carry seconds,
    and counts their plurals.
    """
    path = tmp_path / "earshot.jsonl"
    usage = {
        "input_token_details": {"text_tokens": 26460},
        "output_token_details": {"text_tokens": 5100},
    }
    path.write_bytes(
        b"\n".join(
            [
                _record("c_a", "ws.open", "2026-12-01T10:00:07.000000Z", model="gpt-realtime-mini"),
                _record(
                    "c_a",
                    "realtime.turn",
                    "2026-12-01T10:00:08.000000Z",
                    latency_ms=420.0,
                    usage=usage,
                ),
                _record(
                    "c_a",
                    "ws.close",
                    "2026-12-01T10:00:09.000000Z",
                    closed_by="client",
                    code=1000,
                    duration_ms=2000.0,
                ),
            ]
        )
        + b"\n"
    )
    text = table(build([str(path)]))

    assert "gpt-realtime-mini" in text.split()
    assert "26460/5100" in text.split()
    assert "12-01 10:00:07" in text
    assert "1 session, 1 turn;" in text
    assert "0 interruptions, 0 tool calls" in text


@pytest.mark.parametrize(
    ("since", "kept"),
    [
        ("2026-12-01T10:30:00Z", ["c_b"]),
        ("2026-12-01T11:30:00+01:00", ["c_b"]),  # 10:30 UTC, written with an offset
        ("2026-12-01T09:30:00-01:00", ["c_b"]),
        ("2026-12-01T05:00:00-05:00", ["c_a", "c_b"]),
    ],
)
def test_since_takes_any_offset(tmp_path: Path, since: str, kept: list[str]) -> None:
    """
    `--since` compares times, not strings: an offset other than `Z` selects the same
    sessions as its UTC spelling (string comparison gave 0 sessions).
    """
    path = tmp_path / "earshot.jsonl"
    path.write_bytes(_interleaved())

    assert kept == sorted(r.conn for r in build([str(path)], Filters(since=since)).rows)


def test_since_takes_a_duration_back_from_now() -> None:
    """
    `90m`, `2h`, `1d`, `45s`: that long before now; anything else is a clear error.
    """
    from datetime import UTC, datetime, timedelta

    from proxy.report import since_time

    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert [
        now - timedelta(minutes=90),
        now - timedelta(hours=2),
        now - timedelta(days=1),
        now - timedelta(seconds=45),
    ] == [since_time(t, now) for t in ("90m", "2h", "1d", "45s")]
    with pytest.raises(ValueError, match="RFC 3339"):
        since_time("yesterday", now)


def test_a_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    """
    A log that cannot be read: exit 2 and one line saying which.
    """
    assert 2 == cli.main(["report", "/nonexistent/earshot.jsonl"])
    assert "earshot report: cannot use /nonexistent/earshot.jsonl" in capsys.readouterr().err


def test_the_table_shows_each_session_and_the_totals(tmp_path: Path) -> None:
    """
    One line per session (its slowest tool under it) and the totals.
    """
    path = tmp_path / "earshot.jsonl"
    path.write_bytes(_interleaved())

    text = table(build([str(path)]))

    assert "slowest tool: slow_db 900 ms" in text
    assert "2 sessions, 4 turns" in text
    assert "upstream 1011" in text


def _page(tmp_path: Path, extra: list[bytes]) -> str:
    path = tmp_path / "earshot.jsonl"
    path.write_bytes(_interleaved().rsplit(b"\n", 1)[0] + b"\n" + b"\n".join(extra) + b"\n")
    with Sections() as sections:
        return html(build([str(path)], marker=mark, on_closed=sections.add), sections)


def test_the_page_is_self_contained_and_escapes_what_the_log_says(tmp_path: Path) -> None:
    """
    The timeline page parses as HTML, loads nothing from anywhere (every `src` and `href`
    is an anchor in the page), shows a `<script>` planted in a transcript as text, and
    draws one section with every lane for each session (the planted one's included).
    """
    planted = _record(
        "c_a",
        "realtime.event",
        type="response.output_audio_transcript.done",
        payload={"transcript": "<script>alert('pwned')</script> hello"},
    )

    page = _page(tmp_path, [planted])

    class Parse(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.links: list[str] = []
            self.sections = 0
            self.lanes = 0
            self.scripts = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            self.links += [v or "" for k, v in attrs if k in ("src", "href")]
            self.sections += tag == "section" and values.get("class") == "session"
            self.lanes += tag == "g" and values.get("class") == "lane"
            self.scripts += tag == "script"

    parser = Parse()
    parser.feed(page)
    parser.close()

    assert all(link.startswith("#") for link in parser.links), parser.links
    assert (3, 3 * 8, 1) == (parser.sections, parser.lanes, parser.scripts)  # c_a, c_b, c_x
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert" in page


class _Svg(HTMLParser):
    """A page's timeline geometry: each rect's class, x, width, data-t and data-d, and
    each label's x, estimated width and whether it is shown, by lane."""

    def __init__(self) -> None:
        super().__init__()
        self.rects: list[dict[str, Any]] = []
        self.labels: list[dict[str, Any]] = []
        self.svgs: list[dict[str, str | None]] = []
        self._lane = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a: dict[str, Any] = dict(attrs)
        if tag == "svg":
            self.svgs.append(a)
        elif tag == "g" and a.get("class") == "lane":
            self._lane = a.get("data-lane") or ""
        elif tag == "rect":
            self.rects.append({"svg": len(self.svgs) - 1, "lane": self._lane, **a})
        elif tag == "text" and (a.get("class") or "").startswith("label"):
            self.labels.append({"svg": len(self.svgs) - 1, "lane": self._lane, **a})


def _geometry(page: str) -> _Svg:
    svg = _Svg()
    svg.feed(page)
    svg.close()
    return svg


def test_the_timeline_draws_a_turn_where_the_user_lived_it(tmp_path: Path) -> None:
    """
    A VAD turn whose start mark is 10:00:03.000: 2000 ms of user audio before it (300 ms
    of VAD padding, 1200 ms of speech, 500 ms of silence window), a 640 ms latency inside
    a 1400 ms user wait, and 2400 ms of model audio from its first delta at +700 ms of
    which 1100 ms were heard; client audio from 10:00:01. Each rect's time and length are
    those figures, and its x and width are them at the drawing's scale.
    """
    turn = _record(
        "c_a",
        "realtime.turn",
        "2026-12-01T10:00:06.000000Z",
        start_ts="2026-12-01T10:00:03.000000Z",
        trigger="vad",
        input_audio_ms=2000.0,
        speech_ms=1200.0,
        silence_ms=500,
        latency_ms=640.0,
        user_wait_ms=1400.0,
        first_audio_ms=700.0,
        output_audio_ms=2400.0,
        heard_ms=1100.0,
        interrupted=True,
        input_transcript="what is my balance",
        response_id="r9",
    )

    streamed = _record(
        "c_a",
        "realtime.summary",
        "2026-12-01T10:00:05.000000Z",
        direction="client",
        type="input_audio_buffer.append",
        first_ts="2026-12-01T10:00:01.000000Z",
        ms=2000.0,
    )
    burst = _record(
        "c_a",
        "realtime.summary",
        "2026-12-01T10:00:01.010000Z",
        direction="client",
        type="input_audio_buffer.append",
        first_ts="2026-12-01T10:00:01.000000Z",
        ms=2000.0,
    )

    svg = _geometry(_page(tmp_path, [turn, streamed, burst]))

    (drawn,) = {r["svg"] for r in svg.rects if r["class"] == "unheard"}
    scale = float(svg.svgs[drawn]["data-px"] or 0) / float(svg.svgs[drawn]["data-ms"] or 1)
    by_class: dict[str, list[tuple[float, float]]] = {}
    for rect in (r for r in svg.rects if r["svg"] == drawn):
        t, d = float(rect["data-t"]), float(rect["data-d"])
        assert abs(float(rect["x"]) - (LEFT + t * scale)) < 0.11, rect
        assert abs(float(rect["width"]) - max(2.0, d * scale)) < 0.11, rect
        by_class.setdefault(rect["class"], []).append((round(t, 1), d))
    (start, _) = by_class["latency"][-1]
    assert [(start - 2000, 300.0)] == by_class["padding"]
    assert (start - 1700, 1200.0) in by_class["speech"]
    assert [(start - 500, 500.0)] == by_class["silence"]
    assert (start, 640.0) in by_class["latency"]
    assert [(start + 640 - 1400, 1400.0)] == by_class["user-wait"]
    assert [(start + 700, 1100.0)] == by_class["model-audio"]
    assert [(start + 1800, 1300.0)] == by_class["unheard"]
    assert (start - 1700, 1200.0) in by_class["user-text"]
    # Client audio at its audio position: 2000 ms streamed over 4 s is 2000 ms wide; the
    # same sent in 10 ms (faster than it plays) ends where it arrived.
    assert {(start - 2000, 2000.0), (start - 2000, 10.0)} <= set(by_class["client-audio"])


def test_labels_never_overlap_in_a_lane(tmp_path: Path) -> None:
    """
    Forty tool calls a few milliseconds apart, each with a long label: in every lane,
    each label shown ends before the next shown one starts, and before the next mark;
    the others are hidden (their mark keeps its hover).
    """
    tools = [
        _record(
            "c_a",
            "realtime.tool",
            f"2026-12-01T10:00:02.{i * 20:03d}000Z",
            name=f"lookup_customer_account_{i}",
            duration_ms=5.0,
        )
        for i in range(40)
    ]

    svg = _geometry(_page(tmp_path, tools))

    shown: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for label in svg.labels:
        if "hidden" not in (label.get("class") or ""):
            lane = shown.setdefault((label["svg"], label["lane"]), [])
            lane.append((float(label["x"]), float(label["data-lw"])))
    hidden = [label for label in svg.labels if "hidden" in (label.get("class") or "")]
    for (drawing, lane), spans in shown.items():
        spans.sort()
        for (x, w), (next_x, _) in itertools.pairwise(spans):
            assert x + w <= next_x, (x, w, next_x)
        starts = sorted(
            float(r["x"]) for r in svg.rects if (r["svg"], r["lane"]) == (drawing, lane)
        )
        for x, w in spans:  # nor into the next mark of its lane
            after = [s for s in starts if s > x - 2 + 1]
            assert not after or x + w <= after[0], (x, w, after[0])
    assert hidden  # most of the forty did not fit
    assert 40 <= len([r for r in svg.rects if r.get("class") == "tool"])


@pytest.mark.parametrize(
    ("span_ms", "width_px", "label"),
    [
        (100.0, 900, "10 ms"),
        (7_000.0, 900, "1 s"),
        (1_800_000.0, 4000, "1:00"),
        (3_600_000.0, 4000, "2:00"),
        (7_000.0, 28_800, "20 ms"),  # the demo zoomed in five times
    ],
)
def test_ticks_adapt_to_the_span_and_the_zoom(span_ms: float, width_px: int, label: str) -> None:
    """
    Ticks from a 100 ms session to an hour, and zoomed: at least 80 px apart, never more
    than 2.5 times that (the next step down would have fit), and labelled in the unit
    the step calls for.
    """
    drawn = ticks(span_ms, width_px)

    gaps = {round(b["x"] - a["x"], 1) for a, b in itertools.pairwise(drawn)}
    assert all(80 <= gap <= 200 for gap in gaps), gaps
    assert label == drawn[1]["label"]


@pytest.mark.parametrize("name", [name for name, _ in recorded_sessions()])
async def test_a_recorded_sessions_report_matches_its_records(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink, tmp_path: Path, name: str
) -> None:
    """
    A real recorded session replayed through the proxy, its log reported: the turns are
    its `response.done` events, the tokens their usage summed, the cost the session's
    (`ws.close`): its turns' costs and its input transcription's, summed.
    """
    frames = dict(recorded_sessions())[name]
    fake.greet = fake.scripted = False
    proxy = await make_proxy()
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await lockstep(ws, fake, frames)
    await ws.close()
    await sessions_ended(proxy)
    log = tmp_path / "earshot.jsonl"
    log.write_bytes(b"".join(sink.lines))

    (session,) = build([str(log)]).rows
    figures = session.figures()
    turns = sink.records("realtime.turn")
    usages = [orjson.loads(f)["response"]["usage"] for d, f in frames if b'"response.done"' in f]

    assert len(usages) == figures["turns"] == len(turns)
    output_audio = sum(u["output_token_details"]["audio_tokens"] for u in usages)
    output_text = sum(u["output_token_details"]["text_tokens"] for u in usages)
    assert (output_audio, output_text) == (
        figures["tokens"]["output_audio"],
        figures["tokens"]["output_text"],
    )
    (close,) = sink.records("ws.close")
    priced = [t["cost_usd"] for t in turns if t["cost_usd"] is not None]
    spent = sum(priced) + (close["transcription_cost_usd"] or 0.0)
    assert close["cost_usd"] == figures["cost_usd"]
    assert (round(spent, 9) if priced else None) == close["cost_usd"]
    assert ("client", 1000) == (figures["closed_by"], figures["code"])


# --- a log earshot did not write -------------------------------------------------------


def test_no_control_character_from_the_log_reaches_the_terminal(tmp_path: Path) -> None:
    """
    Escape sequences and other control characters in a model, a tool name, a conn or
    how a session closed are printed as `?`: the table carries none of them.
    """
    path = tmp_path / "earshot.jsonl"
    evil = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202e"
    path.write_bytes(
        b"\n".join(
            [
                _record(f"c_{evil}", "ws.open", model=f"gpt{evil}"),
                _record(f"c_{evil}", "realtime.tool", name=f"tool{evil}", duration_ms=5.0),
                _record(f"c_{evil}", "ws.close", closed_by=evil, code=1000, duration_ms=9.0),
            ]
        )
    )
    text = table(build([str(path)]))
    printed = as_json(build([str(path)])).decode()

    assert [] == [c for c in text if not c.isprintable() and c != "\n"]
    assert "\x1b" not in printed
    assert "\x9b" not in printed


def test_a_line_longer_than_any_record_is_skipped_without_being_held(tmp_path: Path) -> None:
    """
    A 200 MB line in a small `.gz` (the shape of a decompression bomb): counted as a
    skipped line, and the report's process never holds it (its peak memory stays far
    below the line).
    """
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(_record("c_a", "ws.open", model="gpt-realtime") + b"\n")
        chunk = b"a" * (1 << 20)
        for _ in range(200):
            f.write(chunk)
        f.write(b"\n" + _record("c_a", "ws.close", closed_by="client", code=1000) + b"\n")
    # The peak of this process's own memory (VmHWM: `ru_maxrss` would count the peak of
    # the test runner it was forked from, which survives exec on Linux).
    script = (
        "import orjson, re\n"
        "from proxy.report import build\n"
        f"r = build([{str(path)!r}])\n"
        "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "print(orjson.dumps({'skipped': r.skipped, 'sessions': len(r.rows), 'rss_kb': hwm}).decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=True, timeout=120
    )
    figures = orjson.loads(out.stdout)

    assert (1, 1) == (figures["skipped"], figures["sessions"])
    assert figures["rss_kb"] < 120 * 1024, figures


@pytest.mark.parametrize("depth", [65, 300, 5000])
def test_a_line_nested_too_deep_is_skipped(tmp_path: Path, depth: int) -> None:
    """
    A record nested deeper than any earshot writes: skipped and counted, for the table
    and for the page alike; never a crash.
    """
    deep = b'{"a":' * depth + b"1" + b"}" * depth
    path = tmp_path / "earshot.jsonl"
    path.write_bytes(
        _record("c_a", "ws.open") + b"\n" + deep[:-1] + b',"event":"x","conn":"c_a"}\n'
    )
    report = build([str(path)])
    with Sections() as sections:
        page = html(build([str(path)], marker=mark, on_closed=sections.add), sections)

    assert 1 == report.skipped
    assert "<svg" in page


def test_absurd_figures_are_clipped_never_a_crash(tmp_path: Path) -> None:
    """
    A latency of 1e300 ms, a negative one, a tool time of 1e308, a cost of 1e300 and a
    token count of 10^30: ignored or clipped, in the table, the JSON and the page.
    """
    path = tmp_path / "earshot.jsonl"
    lines = [
        _record("c_a", "ws.open", model="gpt-realtime"),
        b'{"ts":"2026-12-01T10:00:01.000000Z","level":"info","event":"realtime.turn","conn":"c_a","latency_ms":1e300,"start_ts":"2026-12-01T10:00:00.000000Z","cost_usd":1e300,"usage":{"output_tokens":1000000000000000000000000000000}}',
        _record("c_a", "realtime.turn", latency_ms=-5.0, start_ts="2026-12-01T10:00:00.000000Z"),
        _record("c_a", "realtime.turn", latency_ms=420.0, start_ts="2026-12-01T10:00:00.000000Z"),
        _record("c_a", "realtime.tool", name="t", duration_ms=1e308),
        _record("c_a", "ws.close", closed_by="client", code=1000, duration_ms=1e300),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = build([str(path)])
    (row,) = [r.figures() for r in report.rows]
    text = table(report)
    with Sections() as sections:
        page = html(build([str(path)], marker=mark, on_closed=sections.add), sections)

    assert {"p50": 420.0, "p95": 420.0, "max": 420.0} == row["latency_ms"]
    assert row["cost_usd"] is None
    assert row["slowest_tool"] is None
    assert row["duration_ms"] is None
    assert "e+" not in text
    assert "<svg" in page


def test_a_page_lets_each_sessions_marks_go_once_it_is_drawn(tmp_path: Path) -> None:
    """
    With `--html`, a session's marks are drawn into the page's spool when it ends and
    then dropped: what the report keeps of a closed session is its row of figures.
    """
    path = tmp_path / "earshot.jsonl"
    lines = []
    for n in range(20):
        conn = f"c_{n}"
        lines.append(_record(conn, "ws.open", model="gpt-realtime"))
        lines += [
            _record(conn, "realtime.event", type="input_audio_buffer.speech_started")
            for _ in range(50)
        ]
        lines.append(_record(conn, "ws.close", closed_by="client", code=1000))
    path.write_bytes(b"\n".join(lines) + b"\n")
    with Sections() as sections:
        report = build([str(path)], marker=mark, on_closed=sections.add)
        page = html(report, sections)

    assert 20 == len(report.rows)
    assert [] == [row.conn for row in report.rows if row.marks]
    assert 20 == page.count('<section class="session"')


def test_turns_lists_the_slowest_waits_first_with_their_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    `earshot report --turns`: one line per turn, slowest first, with the session and
    response ids; `--limit` keeps the slowest that many (a bounded heap, not every turn).
    """
    path = tmp_path / "earshot.jsonl"
    lines = [_record("c_a", "ws.open", model="gpt-realtime")]
    for i, wait in enumerate([300.0, 1200.0, 450.0, 90.0]):
        lines.append(
            _record(
                "c_a",
                "realtime.turn",
                session="sess_A",
                response_id=f"resp_{i}",
                latency_ms=wait,
                status="completed",
            )
        )
    path.write_bytes(b"\n".join(lines) + b"\n")

    assert 0 == cli.main(["report", "--turns", "--limit", "3", "--json", str(path)])
    turns = orjson.loads(capsys.readouterr().out)["turns"]
    assert [("resp_1", 1200.0), ("resp_2", 450.0), ("resp_0", 300.0)] == [
        (t["response_id"], t["user_wait_ms"]) for t in turns
    ]
    assert {"sess_A"} == {t["session"] for t in turns}
    assert 0 == cli.main(["report", "--turns", str(path)])
    text = capsys.readouterr().out
    assert text.splitlines()[2].split()[:4] == ["1200", "1200", "sess_A", "resp_1"]
    assert "4 turns, slowest first" in text


def test_a_bad_since_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    `--since yesterday`: what it takes, on one line; exit 2.
    """
    path = tmp_path / "earshot.jsonl"
    path.write_bytes(b"")

    assert 2 == cli.main(["report", "--since", "yesterday", str(path)])
    assert 1 == len(capsys.readouterr().err.splitlines())
