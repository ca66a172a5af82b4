"""
earshot's metrics checked by the real Prometheus tools (Debian's `prometheus` package:
`apt-get install prometheus`). Not part of the test run; its output is quoted in the
closing notes.

    python tools/prometheus_check.py promtool   # promtool check metrics on a live /metrics
    python tools/prometheus_check.py server     # a Prometheus server scrapes earshot, and
                                                # every dashboard query returns data
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.app import make_app
from proxy.demo_upstream import session_created
from proxy.log import MemorySink, make_logger
from proxy.settings import parse


def _ev(kind: str, **fields: object) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


async def _upstream(request: web.Request) -> web.StreamResponse:
    if request.headers.get("X-Refuse"):
        return web.json_response({"error": {"message": "slow down"}}, status=429)
    ws = web.WebSocketResponse(protocols=("realtime",))
    await ws.prepare(request)
    await ws.send_str(session_created(False, False).decode())
    async for msg in ws:
        if not msg.data.startswith("{"):
            continue  # the frame earshot logged as undecodable
        kind = orjson.loads(msg.data).get("type")
        if kind == "response.create":
            usage = {
                "input_token_details": {"text_tokens": 9},
                "output_token_details": {"audio_tokens": 7},
            }
            for frame in (
                _ev("response.created", response={"id": "r"}),
                _ev("response.output_audio.delta", response_id="r", item_id="i", delta="AAAA"),
                _ev(
                    "response.function_call_arguments.done", response_id="r", call_id="c", name="f"
                ),
                _ev("response.done", response={"id": "r", "status": "completed", "usage": usage}),
            ):
                await ws.send_str(frame)
    return ws


class Earshot:
    """earshot in front of a scripted upstream, on loopback; `turn()` runs a session."""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/v1/realtime", _upstream)
        self.up = web.AppRunner(app)
        await self.up.setup()
        await web.TCPSite(self.up, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{self.up.addresses[0][1]}"
        settings = parse({"upstream": {"url": url}}, environ={})
        self.proxy = web.AppRunner(make_app(settings, make_logger(MemorySink(limit=10))))
        await self.proxy.setup()
        await web.TCPSite(self.proxy, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self.proxy.addresses[0][1]}"
        self.http = aiohttp.ClientSession()
        return self.base

    async def turn(self) -> None:
        async with self.http.ws_connect(f"{self.base}/v1/realtime?model=gpt-realtime") as ws:
            await ws.receive()
            await ws.send_str(_ev("response.create"))
            for _ in range(4):
                await ws.receive()
            item = {"type": "function_call_output", "call_id": "c", "output": "{}"}
            await ws.send_str(_ev("conversation.item.create", item=item))
            await ws.send_str(_ev("conversation.item.truncate", item_id="i", audio_end_ms=1))
            await ws.send_str("not json")
            await asyncio.sleep(0.05)
        # And a handshake the upstream refuses: an upstream failure for the dashboard.
        async with self.http.get(
            f"{self.base}/v1/realtime?model=x",
            headers={
                "X-Refuse": "1",
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        ) as refused:
            assert refused.status == 429

    async def stop(self) -> None:
        await self.http.close()
        await self.proxy.cleanup()
        await self.up.cleanup()


async def promtool_check(promtool: str) -> int:
    earshot = Earshot()
    base = await earshot.start()
    try:
        await earshot.turn()
        async with earshot.http.get(f"{base}/metrics") as resp:
            metrics = await resp.read()
    finally:
        await earshot.stop()
    done = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True)
    names = sorted(
        {
            line.split()[2]
            for line in metrics.decode().splitlines()
            if line.startswith("# TYPE earshot_")
        }
    )
    print(f"{len(names)} earshot metric families: {', '.join(names)}")
    print(f"promtool check metrics: exit {done.returncode}")
    sys.stdout.write(done.stdout.decode() + done.stderr.decode())
    return done.returncode


def _query(port: int, expr: str) -> list[object]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    result: list[object] = body["data"]["result"]
    return result


async def server_check(prometheus: str) -> int:
    earshot = Earshot()
    base = await earshot.start()
    target = base.removeprefix("http://")
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "earshot.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s}\n"
            f"scrape_configs: [{{job_name: earshot, static_configs: [{{targets: ['{target}']}}]}}]\n"
        )
        port = 19090
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp}/data",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # a turn every 300 ms while it scrapes
                await earshot.turn()
                await asyncio.sleep(0.3)
            failed = 0
            for panel in dashboard["panels"]:
                for target_ in panel["targets"]:
                    # The dashboard's variables at "All", as Grafana sends them (allValue).
                    expr = re.sub(r"\$(namespace|job|pod)\b", ".*", target_["expr"])
                    result = await asyncio.to_thread(_query, port, expr)
                    ok = bool(result)
                    failed += not ok
                    print(
                        f"{'ok  ' if ok else 'NONE'} {len(result)} series  {panel['title']}: {target_['expr']}"
                    )
        finally:
            server.terminate()
            server.wait(10)
            await earshot.stop()
    print(f"{failed} dashboard queries returned no data")
    return 1 if failed else 0


def main() -> int:
    """Run the check named on the command line (`promtool` or `server`); its exit code."""
    what = sys.argv[1] if len(sys.argv) > 1 else "promtool"
    tool = shutil.which("promtool" if what == "promtool" else "prometheus")
    if tool is None:
        sys.stderr.write("needs Debian's prometheus package: apt-get install prometheus\n")
        return 2
    if what == "promtool":
        return asyncio.run(promtool_check(tool))
    return asyncio.run(server_check(tool))


if __name__ == "__main__":
    sys.exit(main())
