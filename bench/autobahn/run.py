"""
Autobahn|Testsuite through earshot, beside the same runs without it, in one command:

    python bench/autobahn/run.py            # needs `wstest` (see below); ~10 minutes

1. **Suite as client** (`wstest -m fuzzingclient`) against an aiohttp echo server,
   directly (agent `direct`) and through earshot (agent `earshot`).
2. **Suite as server** (`wstest -m fuzzingserver`), with an aiohttp echo client that
   connects directly (agent `direct`) and through earshot (agent `earshot`;
   `upstream.forward_prefixes` set to the suite's paths).

It prints, per mode, the cases whose outcome through earshot is worse than directly,
and writes `bench/results/autobahn.json`. Cases 9.* (performance), 12.* and 13.*
(permessage-deflate) are excluded to keep the run short; `--all` includes them, and
`--deflate` runs only 12.* and 13.* (to `bench/results/autobahn-deflate.json`).

`wstest` runs on Python 2.7 (on these machines through pyenv):

    ~/.pyenv/versions/2.7.18/bin/pip install autobahntestsuite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
RANK = {"OK": 0, "NON-STRICT": 1, "INFORMATIONAL": 1, "UNIMPLEMENTED": 2, "FAILED": 3}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wstest() -> str:
    # The Python 2.7 install first: a pyenv shim named `wstest` on PATH exists but fails
    # unless 2.7 is the selected version.
    for candidate in (
        os.path.expanduser("~/.pyenv/versions/2.7.18/bin/wstest"),
        shutil.which("wstest"),
    ):
        if candidate and Path(candidate).exists() and "/shims/" not in candidate:
            return candidate
    sys.exit("wstest not found: ~/.pyenv/versions/2.7.18/bin/pip install autobahntestsuite")


async def _echo_handler(request: web.Request) -> web.WebSocketResponse[Any]:
    ws: web.WebSocketResponse[Any] = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


def _earshot(
    upstream: str, port: int, work: Path, prefixes: list[str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EARSHOT_UPSTREAM_URL": upstream,
        "EARSHOT_LISTEN_PORT": str(port),
        "EARSHOT_LOG_OUTPUT": str(work / f"earshot-{port}.jsonl"),
        "EARSHOT_UPSTREAM_HEARTBEAT": "600",
    }
    if prefixes:
        env["EARSHOT_UPSTREAM_FORWARD_PREFIXES"] = json.dumps(prefixes)
    return subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config", str(ROOT / "config" / "default.yaml")],
        env=env,
        cwd=ROOT,
    )


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def _outcomes(index: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        agent: {case: r["behavior"] for case, r in cases.items()} for agent, cases in index.items()
    }


def _compare(outcomes: dict[str, dict[str, str]]) -> dict[str, Any]:
    direct, through = outcomes.get("direct", {}), outcomes.get("earshot", {})
    worse = {
        c: {"direct": direct[c], "earshot": through.get(c, "MISSING")}
        for c in sorted(direct)
        if RANK.get(through.get(c, "FAILED"), 3) > RANK.get(direct[c], 3)
    }
    counts = {
        agent: {b: list(o.values()).count(b) for b in sorted(set(o.values()))}
        for agent, o in outcomes.items()
    }
    return {"cases": len(direct), "counts": counts, "worse_through_earshot": worse}


async def suite_as_client(work: Path, exclude: list[str]) -> dict[str, Any]:
    echo_port, proxy_port = _free_port(), _free_port()
    app = web.Application()
    app.router.add_get("/{tail:.*}", _echo_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", echo_port).start()
    proxy = _earshot(f"http://127.0.0.1:{echo_port}", proxy_port, work)
    try:
        await asyncio.to_thread(_wait_port, proxy_port)
        spec = {
            "outdir": str(work / "servers"),
            "servers": [
                {"agent": "direct", "url": f"ws://127.0.0.1:{echo_port}/v1/realtime"},
                {"agent": "earshot", "url": f"ws://127.0.0.1:{proxy_port}/v1/realtime"},
            ],
            "cases": ["*"],
            "exclude-cases": exclude,
            "exclude-agent-cases": {},
        }
        (work / "client.json").write_text(json.dumps(spec))
        done = await asyncio.create_subprocess_exec(
            _wstest(),
            "-m",
            "fuzzingclient",
            "-s",
            str(work / "client.json"),
            cwd=work,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await done.wait()
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(30)
        await runner.cleanup()
    return _compare(_outcomes(json.loads((work / "servers" / "index.json").read_text())))


async def _echo_client(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(url, max_msg_size=64 * 1024 * 1024, autoping=True) as ws:
                async for msg in ws:
                    if msg.type is WSMsgType.TEXT:
                        await ws.send_str(msg.data)
                    elif msg.type is WSMsgType.BINARY:
                        await ws.send_bytes(msg.data)
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass


async def suite_as_server(work: Path, exclude: list[str]) -> dict[str, Any]:
    suite_port, proxy_port = _free_port(), _free_port()
    spec = {
        "url": f"ws://127.0.0.1:{suite_port}",
        "outdir": str(work / "clients"),
        "cases": ["*"],
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    }
    (work / "server.json").write_text(json.dumps(spec))
    suite = subprocess.Popen(
        [_wstest(), "-m", "fuzzingserver", "-s", str(work / "server.json")],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy = _earshot(
        f"http://127.0.0.1:{suite_port}",
        proxy_port,
        work,
        ["/runCase", "/getCaseCount", "/updateReports"],
    )
    try:
        await asyncio.to_thread(_wait_port, suite_port)
        await asyncio.to_thread(_wait_port, proxy_port)
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"http://127.0.0.1:{suite_port}/getCaseCount") as ws,
        ):
            count = int((await ws.receive()).data)
        for agent, port in (("direct", suite_port), ("earshot", proxy_port)):
            for case in range(1, count + 1):
                await asyncio.wait_for(
                    _echo_client(f"http://127.0.0.1:{port}/runCase?case={case}&agent={agent}"), 60
                )
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"http://127.0.0.1:{suite_port}/updateReports?agent=direct") as ws,
        ):
            await ws.receive()
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(30)
        suite.terminate()
        suite.wait(10)
    return _compare(_outcomes(json.loads((work / "clients" / "index.json").read_text())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="include 9.*, 12.*, 13.*")
    parser.add_argument(
        "--deflate", action="store_true", help="only 12.*, 13.* (permessage-deflate)"
    )
    parser.add_argument("--mode", choices=["both", "client", "server"], default="both")
    args = parser.parse_args()
    if args.deflate:
        exclude = [f"{group}.*" for group in (1, 2, 3, 4, 5, 6, 7, 9, 10)]
    else:
        exclude = [] if args.all else ["9.*", "12.*", "13.*"]
    work = Path(tempfile.mkdtemp(prefix="earshot-autobahn-"))
    results: dict[str, Any] = {"excluded": exclude, "work": str(work)}
    if args.mode in ("both", "client"):
        results["suite_as_client"] = asyncio.run(suite_as_client(work, exclude))
    if args.mode in ("both", "server"):
        results["suite_as_server"] = asyncio.run(suite_as_server(work, exclude))
    for mode in ("suite_as_client", "suite_as_server"):
        if mode in results:
            r = results[mode]
            print(f"{mode}: {r['cases']} cases; {r['counts']}")
            for case, outcome in r["worse_through_earshot"].items():
                print(f"  worse through earshot: {case}: {outcome}")
    RESULTS.mkdir(exist_ok=True)
    name = "autobahn-deflate.json" if args.deflate else "autobahn.json"
    (RESULTS / name).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
