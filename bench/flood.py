"""
One tenant floods, another talks: what the honest session keeps, and how probes fare.

A real earshot (default config, an admin port, the log to a file) in front of
`bench/echo_upstream.py`; `--flooders` clients send empty text frames as fast as they can
for `--seconds`, while one honest client sends an event every 50 ms and `/healthz` is
polled every 100 ms on the traffic port and on the admin port. Run twice in one go: with
the default record budget, and with none (`limits.session_records_per_second: 0`).

    python bench/flood.py                  # prints a table
    python bench/flood.py --seconds 12 --flooders 2

Not a test: figures move with the machine. Read them side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import relay as bench  # noqa: E402  (the shared port helper)


async def _wait(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} never answered")


async def _flood(url: str, until: float) -> int:
    sent = 0
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        await ws.receive()

        async def drain() -> None:
            async for _ in ws:
                pass

        reader = asyncio.create_task(drain())
        while time.monotonic() < until:
            for _ in range(100):
                await ws.send_str("")
            sent += 100
        reader.cancel()
    return sent


async def _honest(url: str, until: float) -> int:
    sent = 0
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.receive()
        while time.monotonic() < until:
            await ws.send_str(
                json.dumps(
                    {
                        "type": "conversation.item.create",
                        "event_id": f"honest_{sent}",
                        "item": {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": f"turn {sent}"}],
                        },
                    }
                )
            )
            await ws.receive()
            sent += 1
            await asyncio.sleep(0.05)
    return sent


async def _probe(url: str, until: float) -> list[float]:
    out = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        while time.monotonic() < until:
            start = time.monotonic()
            try:
                async with http.get(url) as resp:
                    await resp.read()
                out.append((time.monotonic() - start) * 1000)
            except aiohttp.ClientError:
                out.append(float("inf"))
            await asyncio.sleep(0.1)
    return out


async def run_once(seconds: float, flooders: int, budget: bool) -> dict[str, object]:
    up, port, admin = bench._free_port(), bench._free_port(), bench._free_port()
    work = Path(tempfile.mkdtemp(prefix="earshot-flood-"))
    log = work / "log.jsonl"
    config = work / "earshot.yaml"
    config.write_text(
        f"listen: {{host: 127.0.0.1, port: {port}, admin_port: {admin}}}\n"
        f"upstream: {{url: 'http://127.0.0.1:{up}', heartbeat: 0}}\n"
        f"log: {{output: '{log}'}}\n"
        + ("" if budget else "limits: {session_records_per_second: 0}\n")
    )
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "echo_upstream.py"), "--port", str(up)]
    )
    proxy = subprocess.Popen([sys.executable, "-m", "proxy", "--config", str(config)], cwd=ROOT)
    try:
        await _wait(f"http://127.0.0.1:{admin}/healthz")
        until = time.monotonic() + seconds
        ws_url = f"http://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
        results = await asyncio.gather(
            *(_flood(ws_url, until) for _ in range(flooders)),
            _honest(ws_url, until),
            _probe(f"http://127.0.0.1:{port}/healthz", until),
            _probe(f"http://127.0.0.1:{admin}/healthz", until),
        )
        await asyncio.sleep(1.0)
    finally:
        proxy.terminate()
        proxy.wait(30)
        upstream.terminate()
        upstream.wait(10)
    flooded = sum(results[:flooders])  # type: ignore[arg-type]
    honest_sent: int = results[flooders]  # type: ignore[assignment]
    traffic: list[float] = results[flooders + 1]  # type: ignore[assignment]
    admin_ms: list[float] = results[flooders + 2]  # type: ignore[assignment]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    honest_kept = sum(
        1
        for r in records
        if r["event"] == "realtime.event" and str(r.get("event_id", "")).startswith("honest_")
    )
    dropped = sum(r.get("count", 0) for r in records if r["event"] == "log.dropped")
    suppressed = sum(r.get("records", 0) for r in records if r["event"] == "realtime.suppressed")

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    return {
        "budget": budget,
        "flooded_frames": flooded,
        "flood_rate": flooded / seconds,
        "honest_sent": honest_sent,
        "honest_kept": honest_kept,
        "records": len(records),
        "suppressed": suppressed,
        "dropped": dropped,
        "healthz_traffic_p50": statistics.median(traffic) if traffic else float("nan"),
        "healthz_traffic_max": max(traffic, default=float("nan")),
        "healthz_admin_p50": statistics.median(admin_ms) if admin_ms else float("nan"),
        "healthz_admin_p95": pct(admin_ms, 0.95),
        "healthz_admin_max": max(admin_ms, default=float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flooders", type=int, default=2)
    args = parser.parse_args()
    rows = [asyncio.run(run_once(args.seconds, args.flooders, budget)) for budget in (True, False)]
    keys = list(rows[0])
    print(f"{'':24}" + "".join(f"{'budget' if r['budget'] else 'no budget':>14}" for r in rows))
    for key in keys[1:]:
        print(
            f"{key:24}"
            + "".join(
                f"{r[key]:>14.1f}" if isinstance(r[key], float) else f"{r[key]:>14}" for r in rows
            )
        )


if __name__ == "__main__":
    main()
