"""
Instructions per relayed frame, counted by valgrind's callgrind: a figure that does not
move with the machine's load, for comparing a change with the code before it.

    python bench/instructions.py                        # bare, parse, earshot; audio and small
    python bench/instructions.py --targets earshot --kinds audio --earshot /path/to/checkout

Each target runs under `valgrind --tool=callgrind` in front of `bench/echo_upstream.py`
(not under valgrind), and `bench/relay.py`'s ping-pong drives 200, then 1,200 round trips
through a fresh process; the difference of the two totals over the 2,000 extra frames is
the cost of a frame, start-up and shutdown cancelled out. About 90 s per target and kind.
Timers that fire per second (the summary clock, the heartbeat clock) still add a little
with the run's length: repeated figures agree within about 3%.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import relay as bench

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SHORT, LONG = 200, 1200


def _command(target: str, checkout: Path, up: int, port: int) -> tuple[list[str], Path]:
    if target in ("bare", "parse"):
        relay = [PY, str(ROOT / "bench" / "bare_relay.py"), "--port", str(port)]
        return [*relay, "--upstream", f"http://127.0.0.1:{up}"] + (
            ["--parse"] if target == "parse" else []
        ), ROOT
    return [PY, "-m", "proxy", "--config", "config/default.yaml"], checkout


async def _total(target: str, checkout: Path, kind: str, round_trips: int, work: Path) -> int:
    """Instructions of one process that relayed `round_trips` round trips of `kind`."""
    up, port = bench._free_port(), bench._free_port()
    upstream = subprocess.Popen([PY, str(ROOT / "bench" / "echo_upstream.py"), "--port", str(up)])
    out = work / f"{target}-{kind}-{round_trips}.callgrind"
    argv, cwd = _command(target, checkout, up, port)
    env = {
        **os.environ,
        "EARSHOT_UPSTREAM_URL": f"http://127.0.0.1:{up}",
        "EARSHOT_LISTEN_PORT": str(port),
        "EARSHOT_LOG_OUTPUT": str(work / "earshot.jsonl"),
    }
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
        cwd=cwd,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
        await bench._wait_ws(url, timeout=300)
        await bench.ping_pong(url, bench.KINDS[kind], round_trips)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(300)
        upstream.terminate()
        upstream.wait(30)
    found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if found is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(found.group(1))


async def per_frame(target: str, checkout: Path, kind: str) -> float:
    """Instructions per relayed frame (two per round trip)."""
    with tempfile.TemporaryDirectory(prefix="earshot-instructions-") as folder:
        work = Path(folder)
        short = await _total(target, checkout, kind, SHORT, work)
        long = await _total(target, checkout, kind, LONG, work)
    return (long - short) / (2 * (LONG - SHORT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--targets", default="bare,parse,earshot")
    parser.add_argument("--kinds", default="audio,small")
    parser.add_argument("--earshot", type=Path, default=ROOT, help="the checkout to run")
    args = parser.parse_args()
    results: dict[tuple[str, str], float] = {}
    for kind in args.kinds.split(","):
        for target in args.targets.split(","):
            results[(target, kind)] = asyncio.run(per_frame(target, args.earshot, kind))
            base = results.get(("parse", kind))
            ratio = f" ({results[(target, kind)] / base:.2f}× parse)" if base else ""
            print(
                f"{target:8} {kind:6} {results[(target, kind)]:9,.0f} instructions per frame{ratio}",
                flush=True,
            )


if __name__ == "__main__":
    main()
