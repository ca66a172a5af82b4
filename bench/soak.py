"""
Load and soak: 1,000 idle sessions and a disconnect storm, then audio sessions for
`--minutes`, watching earshot's own gauges (`/metrics`: resident memory, open file
descriptors, asyncio tasks) for growth.

    python bench/soak.py                    # 1,000 idle sessions, then 15 minutes of audio
    python bench/soak.py --minutes 1        # a short check

Phase 1 opens 1,000 idle sessions through earshot (in front of `bench/echo_upstream.py`),
reads the gauges, then drops every client connection without a Close (a disconnect
storm) and checks that fds and tasks return to their baseline. Phase 2 keeps
`--sessions` audio sessions (50 frames/s each way, 6.4 KB) running for `--minutes`,
sampling the gauges every 30 s, and reports memory growth between the first and the
last quarter of the run. Results: bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import relay as R

ROOT = Path(__file__).resolve().parent.parent


async def gauges(http: aiohttp.ClientSession, port: int) -> dict[str, float]:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    out = {}
    for line in text.splitlines():
        for name in (
            "process_resident_memory_bytes",
            "process_open_fds",
            "earshot_asyncio_tasks",
            "earshot_sessions_active",
        ):
            if line.startswith(name + " "):
                out[name] = float(line.split()[1])
    return out


async def settle(
    http: aiohttp.ClientSession, port: int, want_sessions: float, timeout: float = 30
) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        g = await gauges(http, port)
        if g["earshot_sessions_active"] == want_sessions or time.monotonic() > deadline:
            return g
        await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="earshot-soak-"))
    up = R.start_upstream(work)
    port = R._free_port()
    env = {
        **os.environ,
        "EARSHOT_UPSTREAM_URL": f"http://127.0.0.1:{up.port}",
        "EARSHOT_LISTEN_PORT": str(port),
        "EARSHOT_LOG_OUTPUT": str(work / "earshot.jsonl"),
    }
    proxy = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config", str(ROOT / "config" / "default.yaml")],
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
    result: dict[str, Any] = {}
    try:
        await R._wait_ws(f"http://127.0.0.1:{up.port}/v1/realtime")
        await R._wait_ws(url)
        async with aiohttp.ClientSession() as http:
            baseline = await settle(http, port, 0)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as clients:
                sockets = []
                for _ in range(args.idle):
                    ws = await clients.ws_connect(url)
                    await ws.receive(timeout=10)
                    sockets.append(ws)
                loaded = await settle(http, port, args.idle)
                for ws in sockets:  # a disconnect storm: no Close frames
                    ws._response.connection.transport.abort()
            after_storm = await settle(http, port, 0)
            result["idle"] = {
                "sessions": args.idle,
                "baseline": baseline,
                "loaded": loaded,
                "after_disconnect_storm": after_storm,
                "rss_kb_per_idle_session": (
                    loaded["process_resident_memory_bytes"]
                    - baseline["process_resident_memory_bytes"]
                )
                / args.idle
                / 1024,
            }
            print(json.dumps(result["idle"], indent=1), flush=True)

            samples: list[dict[str, float]] = []
            stop = time.monotonic() + args.minutes * 60

            async def sample() -> None:
                while time.monotonic() < stop:
                    g = await gauges(http, port)
                    g["t"] = round(time.monotonic() - (stop - args.minutes * 60), 1)
                    samples.append(g)
                    print(
                        f"  t={g['t']:7.1f}s rss={g['process_resident_memory_bytes'] / 2**20:7.1f} MiB fds={g['process_open_fds']:.0f} tasks={g['earshot_asyncio_tasks']:.0f}",
                        flush=True,
                    )
                    await asyncio.sleep(30)

            sampler = asyncio.create_task(sample())
            rtts, achieved, _cpu = await R.paced(
                url, args.sessions, 50.0, args.minutes * 60, R.audio_frame
            )
            await sampler
            final = await settle(http, port, 0)
            q = max(1, len(samples) // 4)
            first = sum(s["process_resident_memory_bytes"] for s in samples[:q]) / q
            last = sum(s["process_resident_memory_bytes"] for s in samples[-q:]) / q
            result["audio"] = {
                "sessions": args.sessions,
                "minutes": args.minutes,
                "round_trips": len(rtts),
                "p99_ms": R.p(rtts, 0.99),
                "achieved_rt_per_s": achieved,
                "rss_growth_first_to_last_quarter_mib": (last - first) / 2**20,
                "after": final,
                "samples": samples,
            }
            print(
                f"audio: {args.sessions} sessions × {args.minutes} min, p99 {R.p(rtts, 0.99):.2f} ms, rss growth {(last - first) / 2**20:+.2f} MiB, after: {final}",
                flush=True,
            )
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(30)
        up.proc.terminate() if up.proc else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=15)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    R.RESULTS.mkdir(exist_ok=True)
    (R.RESULTS / "soak.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
