"""
Workers (SPEC §1.9): with `listen.workers > 1` every record is one whole line, whatever
its length and however slowly the output is read; a worker that dies is logged and
started again, and the merged counters never go backwards; killing the parent leaves no
worker serving the port and no folder behind. Real processes, real pipes, real signals.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.helpers import free_port, process, terminated, wait_healthy
from tests.test_cli import _sample_sum, _sessions_per_worker


def _config(upstream: Any, tmp_path: Path, output: str, workers: int = 2) -> tuple[int, Path]:
    _fake, server = upstream
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(
        f"listen: {{host: 127.0.0.1, port: {port}, workers: {workers}}}\n"
        f"upstream: {{url: '{str(server.make_url('')).rstrip('/')}', heartbeat: 0}}\n"
        f"log: {{output: '{output}', events: {{default: full}}}}\n"
    )
    return port, config


def _children(parent: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _sessions_on_both(
    http: aiohttp.ClientSession, url: str, parent: int, port: int
) -> list[Any]:
    """Open sessions until each of the two workers holds at least two."""
    sockets = []
    while len(sockets) < 4 or min(_sessions_per_worker(parent, port).values()) < 2:
        assert len(sockets) < 64, _sessions_per_worker(parent, port)
        ws = await http.ws_connect(f"{url}/v1/realtime?model=gpt-realtime", max_msg_size=0)
        await ws.receive(timeout=5)
        sockets.append(ws)
    return sockets


async def test_two_workers_write_whole_lines_of_20_kb_into_a_slow_pipe(
    upstream: Any, tmp_path: Path
) -> None:
    """
    Two workers log records of about 20 KB at once into stdout, a pipe whose reader takes
    4 KB every 4 ms: every line the reader gets is valid JSON, and none is lost.
    """
    port, config = _config(upstream, tmp_path, "stdout")
    url = f"http://127.0.0.1:{port}"
    chunks: list[bytes] = []
    with process(
        [sys.executable, "-m", "proxy", "--config", str(config)], stdout=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None
        stdout = proc.stdout

        def slow_reader() -> None:
            while data := os.read(stdout.fileno(), 4096):
                chunks.append(data)
                time.sleep(0.004)

        reader = threading.Thread(target=slow_reader, daemon=True)
        reader.start()
        await wait_healthy(port, proc)
        text = ("hello there, how are you today? " * 700)[:20_000]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            sockets = await _sessions_on_both(http, url, proc.pid, port)
            per_socket = 10
            for i in range(per_socket):
                for n, ws in enumerate(sockets):
                    event = {
                        "type": "conversation.item.create",
                        "event_id": f"big_{n}_{i}",
                        "item": {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": text}],
                        },
                    }
                    await ws.send_str(orjson.dumps(event).decode())
            await asyncio.sleep(0.5)
            for ws in sockets:
                await ws.close()
        assert 0 == await terminated(proc)
        reader.join(30)
        stdout.close()
    lines = b"".join(chunks).splitlines()
    records = [orjson.loads(line) for line in lines]  # every line valid JSON
    big = [
        r
        for r in records
        if r["event"] == "realtime.event" and r.get("event_id", "").startswith("big_")
    ]
    assert len(sockets) * per_socket == len({r["event_id"] for r in big})
    assert {20_000} == {len(r["payload"]["item"]["content"][0]["text"]) for r in big}


async def test_a_killed_worker_is_logged_restarted_and_its_counts_kept(
    upstream: Any, tmp_path: Path
) -> None:
    """
    SIGKILL one of two workers: `worker.exited` says its pid, signal 9 and that it was
    restarted; two workers serve again; `earshot_workers_restarted_total` is 1; and no
    scrape after the kill shows fewer frames than one before it did.
    """
    log = tmp_path / "log.jsonl"
    port, config = _config(upstream, tmp_path, str(log))
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "proxy", "--config", str(config)]) as proc:
        await wait_healthy(port, proc)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True)
        ) as http:
            sockets = await _sessions_on_both(http, url, proc.pid, port)
            for ws in sockets:
                await ws.send_str('{"type":"input_audio_buffer.commit"}')
            before = 0.0
            for _ in range(100):  # until every frame is counted, in scrapes of both workers
                async with http.get(f"{url}/metrics") as answer:
                    text = await answer.text()
                before = _sample_sum(text, "earshot_frames_total", direction="client")
                if before == len(sockets) and _sample_sum(text, "earshot_workers") == 2:
                    break
                await asyncio.sleep(0.05)
            for _ in range(8):  # each worker answers some of these, and saves what it showed
                async with http.get(f"{url}/metrics") as answer:
                    await answer.text()
            victim = _children(proc.pid)[0]
            os.kill(victim, signal.SIGKILL)
            for ws in sockets:
                await ws.close()
            seen = []
            restarted = 0.0
            for _ in range(200):
                await asyncio.sleep(0.05)
                try:
                    async with http.get(f"{url}/metrics") as answer:
                        text = await answer.text()
                except aiohttp.ClientError:
                    continue
                seen.append(_sample_sum(text, "earshot_frames_total", direction="client"))
                restarted = _sample_sum(text, "earshot_workers_restarted_total")
                if restarted == 1 and _sample_sum(text, "earshot_workers") == 2 and len(seen) > 10:
                    break
        assert 0 == await terminated(proc)
    assert 1 == restarted
    assert all(value >= before for value in seen), (before, seen)
    records = [orjson.loads(line) for line in log.read_text().splitlines()]
    (exited,) = [r for r in records if r["event"] == "worker.exited"]
    assert (victim, 9, True) == (exited["pid"], exited["signal"], exited["restarted"])


async def test_killing_the_parent_stops_its_workers_and_removes_their_folder(
    upstream: Any, tmp_path: Path
) -> None:
    """
    SIGKILL the parent: both workers exit (none keeps serving the port), and the folder
    of their metrics sockets is gone.
    """
    port, config = _config(upstream, tmp_path, str(tmp_path / "log.jsonl"))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with process(
        [sys.executable, "-m", "proxy", "--config", str(config)],
        env={**os.environ, "TMPDIR": str(tmp)},
    ) as proc:
        await wait_healthy(port, proc)
        for _ in range(600):  # 30 s at most: workers import slowly on a busy machine
            if len(_children(proc.pid)) == 2:
                break
            await asyncio.sleep(0.05)
        workers = _children(proc.pid)
        assert 2 == len(workers)
        proc.kill()
        proc.wait()
        for _ in range(600):
            if not any(_alive(w) for w in workers) and not list(tmp.iterdir()):
                break
            await asyncio.sleep(0.05)
    assert [] == [w for w in workers if _alive(w)]
    assert [] == list(tmp.iterdir())
    reader = asyncio.open_connection("127.0.0.1", port)
    try:
        _, writer = await reader
    except OSError:
        return
    writer.close()
    raise AssertionError("a worker still serves the port")
