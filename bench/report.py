"""
`earshot report` on a 100,000-record log: time and peak memory, from one run.

The log is generated: 1,000 sessions of 100 records each (open, summaries, events,
turns, tools, close), interleaved 10 at a time as a busy proxy writes them.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.report import build


def _session(conn: str, i: int) -> list[bytes]:
    ts = f"2026-12-01T{10 + i % 10:02d}:{i % 60:02d}:00.000000Z"
    base = {
        "ts": ts,
        "level": "info",
        "conn": conn,
        "model": "gpt-realtime",
        "session": f"sess_{i}",
    }
    usage = {
        "input_token_details": {"audio_tokens": 50},
        "output_token_details": {"audio_tokens": 80},
    }
    lines = [{**base, "event": "ws.open", "path": "/v1/realtime?model=gpt-realtime"}]
    for t in range(24):
        lines.append({**base, "event": "realtime.summary", "direction": "client", "frames": 50})
        lines.append({**base, "event": "realtime.event", "type": "response.created", "payload": {}})
        lines.append(
            {
                **base,
                "event": "realtime.turn",
                "latency_ms": 300.0 + t,
                "usage": usage,
                "cost_usd": 0.001,
            }
        )
        lines.append({**base, "event": "realtime.tool", "name": "lookup", "duration_ms": 100.0 + t})
    lines += [{**base, "event": "realtime.interruption"}, {**base, "event": "realtime.undecodable"}]
    lines.append(
        {**base, "event": "ws.close", "closed_by": "client", "code": 1000, "duration_ms": 60000.0}
    )
    return [orjson.dumps(line) for line in lines[:100]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "earshot.jsonl"
        with path.open("wb") as f:
            for batch in range(0, args.sessions, 10):
                sessions = [_session(f"c_{i:06d}", i) for i in range(batch, batch + 10)]
                for lines in zip(*sessions, strict=True):
                    f.write(b"\n".join(lines) + b"\n")
        records = sum(1 for _ in path.open("rb"))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        report = build([str(path)])
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"records: {records}, sessions: {len(report.rows)}")
    print(f"time: {seconds:.2f} s ({records / seconds:,.0f} records/s)")
    print(f"peak RSS: {peak / 1024:.1f} MB (grew {(peak - before) / 1024:.1f} MB while reporting)")


if __name__ == "__main__":
    main()
