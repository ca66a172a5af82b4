"""
`promtool check metrics` on earshot's live `/metrics`, after a session with a turn, a
tool call and an interruption (Debian's `prometheus` package: `apt-get install
prometheus`). Not part of the test run; its output is quoted in the closing notes.

    python tools/promtool_check.py
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.app import make_app
from proxy.demo import session_created
from proxy.log import MemorySink, make_logger
from proxy.settings import parse


def _ev(kind: str, **fields: object) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


async def _upstream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("realtime",))
    await ws.prepare(request)
    await ws.send_str(session_created(False, False).decode())
    async for msg in ws:
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


async def scrape() -> bytes:
    app = web.Application()
    app.router.add_get("/v1/realtime", _upstream)
    up = web.AppRunner(app)
    await up.setup()
    await web.TCPSite(up, "127.0.0.1", 0).start()
    settings = parse({"upstream": {"url": f"http://127.0.0.1:{up.addresses[0][1]}"}}, environ={})
    proxy = web.AppRunner(make_app(settings, make_logger(MemorySink(limit=10))))
    await proxy.setup()
    await web.TCPSite(proxy, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{proxy.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{base}/v1/realtime?model=gpt-realtime") as ws:
                await ws.receive()
                await ws.send_str(_ev("response.create"))
                for _ in range(4):
                    await ws.receive()
                item = {"type": "function_call_output", "call_id": "c", "output": "{}"}
                await ws.send_str(_ev("conversation.item.create", item=item))
                await ws.send_str(_ev("conversation.item.truncate", item_id="i", audio_end_ms=1))
                await asyncio.sleep(0.1)
            async with http.get(f"{base}/metrics") as resp:
                return await resp.read()
    finally:
        await proxy.cleanup()
        await up.cleanup()


def main() -> int:
    promtool = shutil.which("promtool")
    if promtool is None:
        sys.stderr.write("needs Debian's prometheus package: apt-get install prometheus\n")
        return 2
    metrics = asyncio.run(scrape())
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


if __name__ == "__main__":
    sys.exit(main())
