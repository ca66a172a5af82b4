"""
The docs' pictures of `earshot report --html`, photographed with headless Chromium
(Debian's `chromium`: `apt-get install chromium`). Not part of the test run.

    python tools/screenshot.py

writes three, one per scale the timeline has to work at:
- `docs/timeline-short.png`: a sub-second session (`earshot demo`, the scripted one);
- `docs/report.png`: the paced voice turn (`earshot demo --timeline`, about 6 s);
- `docs/timeline-long.png`: a 30-minute session, the paced turn repeated with its times
  shifted (one connection), which gets a turn list beside its timeline.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
_TIMES = ("ts", "first_ts", "start_ts")


def _demo(args: list[str], out: Path) -> None:
    with out.open("wb") as f:
        subprocess.run(
            [sys.executable, "-m", "proxy", "demo", *args],
            stdout=f,
            stderr=subprocess.DEVNULL,
            check=True,
            cwd=ROOT,
        )


def _shifted(record: dict[str, Any], by: timedelta) -> dict[str, Any]:
    out = dict(record)
    for key in _TIMES:
        if isinstance(out.get(key), str):
            when = datetime.fromisoformat(out[key].replace("Z", "+00:00")) + by
            out[key] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out


def _long_session(paced: Path, out: Path, minutes: float = 30.0) -> None:
    """The paced session's records repeated, times shifted, as one connection: its
    `ws.open` once at the start, its `ws.close` once at the end."""
    records = [orjson.loads(line) for line in paced.read_bytes().splitlines()]
    session = [r for r in records if str(r.get("conn", "")).startswith("c_")]
    conn = session[0]["conn"]
    body = [r for r in session if r["event"] not in ("ws.open", "ws.close")]
    first = datetime.fromisoformat(session[0]["ts"].replace("Z", "+00:00"))
    last = datetime.fromisoformat(session[-1]["ts"].replace("Z", "+00:00"))
    period = last - first + timedelta(seconds=1)
    lines = [session[0]]
    n = int(timedelta(minutes=minutes) / period)
    for i in range(n):
        lines += [_shifted({**r, "conn": conn}, period * i) for r in body]
    close = _shifted(session[-1], period * (n - 1))
    close["duration_ms"] = round((period * n).total_seconds() * 1000, 1)
    lines.append(close)
    out.write_bytes(b"\n".join(orjson.dumps(r) for r in lines) + b"\n")


def _photograph(chromium: str, log: Path, picture: Path, size: str, tmp: str) -> None:
    page = Path(tmp) / f"{picture.stem}.html"
    subprocess.run(
        [sys.executable, "-m", "proxy", "report", "--html", str(page), str(log)],
        stdout=subprocess.DEVNULL,
        check=True,
        cwd=ROOT,
    )
    subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp}/profile",
            f"--window-size={size}", f"--screenshot={picture}", page.as_uri(),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )  # fmt: skip
    print(f"written to {picture}")


def main() -> int:
    """Draw the three sessions into docs/; 0 when written."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.stderr.write("needs Debian's chromium: apt-get install chromium\n")
        return 2
    docs = ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp:
        short, paced, long = (Path(tmp) / f"{n}.jsonl" for n in ("short", "paced", "long"))
        _demo([], short)
        _demo(["--timeline"], paced)
        _long_session(paced, long)
        _photograph(chromium, short, docs / "timeline-short.png", "1400,700", tmp)
        _photograph(chromium, paced, docs / "report.png", "1400,760", tmp)
        _photograph(chromium, long, docs / "timeline-long.png", "1400,760", tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
