"""
The sidecar's stop (SPEC §6): as a Kubernetes native sidecar, earshot gets SIGTERM only
after the app container has exited. Its sessions are then closed already; it must write
what it holds and leave at once, not wait out `shutdown.grace_period` while the pod's
grace runs down. Real processes: an app with a Realtime session, then earshot.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from tests.helpers import free_port, process, wait_healthy

APP = textwrap.dedent(
    """
    import asyncio, signal, sys
    import aiohttp

    async def main(port):
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"http://127.0.0.1:{port}/v1/realtime?model=gpt-realtime")
            await ws.receive()
            await ws.send_str('{"type":"input_audio_buffer.commit"}')
            print("ready", flush=True)
            await stop.wait()          # the kubelet stops the app first
            await ws.close()           # ... which ends its session before it exits

    asyncio.run(main(int(sys.argv[1])))
    """
)


async def test_stopped_after_the_app_earshot_writes_everything_and_leaves_at_once(
    upstream: Any, tmp_path: Path
) -> None:
    """
    The app is stopped and exits; then earshot gets SIGTERM with a 20 s grace period: it
    exits 0 long before the grace period (no session is left to wait for), and every
    record of the app's session is in the log, `ws.close` and `proxy.stop` included.
    """
    _, server = upstream
    port = free_port()
    log = tmp_path / "log.jsonl"
    config = tmp_path / "c.yaml"
    config.write_text(
        f"listen: {{host: 127.0.0.1, port: {port}}}\n"
        f"upstream: {{url: '{str(server.make_url('')).rstrip('/')}'}}\n"
        f"log: {{output: '{log}'}}\nshutdown: {{grace_period: 20}}\n"
    )
    app_script = tmp_path / "app.py"
    app_script.write_text(APP)
    with process([sys.executable, "-m", "proxy", "--config", str(config)]) as earshot:
        await wait_healthy(port, earshot)
        with process([sys.executable, str(app_script), str(port)], stdout=-1) as app:
            assert app.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(app.stdout.readline), 10)
            assert b"ready\n" == line
            app.send_signal(signal.SIGTERM)
            assert 0 == await asyncio.to_thread(app.wait, 10)
            app.stdout.close()
        started = time.monotonic()
        earshot.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(earshot.wait, 30)
        took = time.monotonic() - started

    assert 0 == code
    assert took < 10, took  # the grace period (20 s) is not waited out: nothing is open
    records = [json.loads(line) for line in log.read_text().splitlines()]
    events = [r["event"] for r in records]
    assert 1 == events.count("ws.open")
    (close,) = [r for r in records if r["event"] == "ws.close"]
    assert "client" == close["closed_by"]
    assert "proxy.stop" == events[-1]
