"""
earshot against a direct connection, the relays it is measured against, nginx and LiteLLM's
realtime proxy, under the same load, interleaved over rounds, in one run.

    python bench/relay.py                 # the full run (~15 minutes), table + bench/results/relay.json
    python bench/relay.py --quick         # fewer samples and steps, for a smoke check
    python bench/relay.py --only parse,earshot   # some targets (direct always runs)

It starts `bench/echo_upstream.py` (a Realtime-shaped echo), then each target in front of
it: `direct` (no proxy), `bare` (`bench/bare_relay.py`: aiohttp, forward only), `parse`
(the same relay plus one `orjson.loads` of every frame before forwarding it: the floor of
any relay that reads each event, and the yardstick of issue #14), `earshot` (default
config, turn tracking on, log written to a file), `earshot2w` (the same, two workers
sharing the port with SO_REUSEPORT), `nginx` (Debian's package as a WebSocket reverse
proxy; skipped with a message if `nginx` is not installed), `litellm` (LiteLLM's proxy
from `bench/.litellm/bin/litellm`; skipped with a message when absent). Measures:

- added round-trip latency per frame (p50, p99) over the direct connection, one session,
  ping-pong (paced: one frame in flight), for three kinds of round trip: `audio`, a 6.4 KB
  audio append answered by a 6.4 KB audio delta; `small`, a small text delta (the
  upstream's answer to a 2 ms audio append: both frames are high-volume events, which the
  default policy summarises); `full`, a small client event the default policy logs in
  full (`conversation.item.retrieve`, one `realtime.event` record per frame) answered by a
  small text delta;
- CPU time of the target's processes per relayed frame: during the paced `audio` and
  `small` runs (`CPU µs/fr`), the `full` runs (`CPU full`), under the steady load of 100
  concurrent audio sessions below (`CPU load`, connecting excluded), and back to back
  (`b2b audio`, `b2b small`: one session, as fast as the round trips go with at most 32
  in flight), with the back-to-back throughput (`b2b rt/s`);
- the highest paced rate (20 ms audio appends, 16 sessions) with p99 round trip ≤ 5 ms;
- the session ceiling: concurrent audio sessions at 50 frames/s each way (6.4 KB) with
  p99 ≤ 20 ms, the ramp raised until it breaks (up to 2,000);
- resident memory per idle session (500 sessions).

Then earshot against each target of issue #14, as a ratio to `parse` (or as the issue
states it), met or missed. The load generator, the upstream and the target share this
machine's cores: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _raise_fd_limit() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_raise_fd_limit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _audio(ms: int) -> str:
    return base64.b64encode(bytes(range(256)) * (ms * 48 // 256) + bytes(ms * 48 % 256)).decode()


# Every target gets the same credentials; only LiteLLM checks them (its master key).
LITELLM_KEY = "sk-earshot-bench-master-key-0123456789"
HEADERS = {"Authorization": f"Bearer {LITELLM_KEY}"}

AUDIO_100MS = _audio(100)  # 4800 bytes → 6400 base64 characters
AUDIO_20MS = _audio(20)


def audio_frame(i: int, audio: str = AUDIO_100MS) -> bytes:
    return f'{{"type":"input_audio_buffer.append","event_id":"{i:08d}","audio":"{audio}"}}'.encode()


# The concurrent-sessions step whose CPU per frame is reported (`CPU load`): audio at
# 50 frames/s each way from this many sessions (or the largest step below it).
LOAD_SESSIONS = 100

AUDIO_2MS = _audio(2)  # 128 base64 characters: the upstream answers with a text delta


def small_frame(i: int) -> bytes:
    return audio_frame(i, AUDIO_2MS)


AUDIO_4MS = _audio(4)  # 256 base64 characters: answered by a text delta of a new item


def newitem_frame(i: int) -> bytes:
    return audio_frame(i, AUDIO_4MS)


def full_frame(i: int) -> bytes:
    return f'{{"type":"conversation.item.retrieve","event_id":"{i:08d}","item_id":"item_001"}}'.encode()


KINDS: dict[str, Callable[[int], bytes]] = {
    "audio": audio_frame,
    "small": small_frame,
    "full": full_frame,
    "newitem": newitem_frame,
}
# The kinds measured back to back as well as paced.
BURSTS = ("audio", "small")


def _item_id(data: bytes) -> int | None:
    """The sequence number the echo upstream copied into its reply's `event_id`."""
    at = data.find(b'"event_id"')
    if at < 0:
        return None
    # Re-serialising proxies (LiteLLM) write `"event_id": "…"` with a space.
    start = data.find(b'"', at + 10) + 1
    try:
        return int(data[start : start + 8])
    except ValueError:
        return None


# --- processes ------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """A process and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of the processes, every thread: the scheduler's own nanosecond count
    (`/proc/PID/task/TID/schedstat`), or clock ticks where that is not available."""
    total = 0.0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                try:
                    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                    fields = stat.rsplit(")", 1)[1].split()
                    total += (int(fields[11]) + int(fields[12])) / TICK
                except OSError:
                    continue
    return total


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return total


@dataclass
class Target:
    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    note: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/realtime?model=gpt-realtime"

    def pids(self) -> list[int]:
        return _tree(self.proc.pid) if self.proc else []


async def _wait_ws(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.ws_connect(url, headers=HEADERS) as ws:
                    await ws.receive(timeout=2)
                    return
            except (TimeoutError, aiohttp.ClientError, OSError):
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start_upstream(work: Path) -> Target:
    port = _free_port()
    proc = subprocess.Popen([PY, str(ROOT / "bench" / "echo_upstream.py"), "--port", str(port)])
    return Target("upstream", port, proc)


def start_targets(work: Path, up: int, only: set[str] | None, targets: list[Target]) -> None:
    """Start every target, appending each to `targets` as it starts (so all are stopped)."""
    targets.append(Target("direct", up))
    for name, extra in (("bare", []), ("parse", ["--parse"])):
        port = _free_port()
        relay = [PY, str(ROOT / "bench" / "bare_relay.py"), "--port", str(port)]
        upstream = ["--upstream", f"http://127.0.0.1:{up}", *extra]
        targets.append(Target(name, port, subprocess.Popen([*relay, *upstream])))
    config = ROOT / "config" / "default.yaml"
    for name, workers in (("earshot", 1), ("earshot2w", 2)):
        port = _free_port()
        env = {
            **os.environ,
            "EARSHOT_UPSTREAM_URL": f"http://127.0.0.1:{up}",
            "EARSHOT_LISTEN_PORT": str(port),
            "EARSHOT_LISTEN_WORKERS": str(workers),
            "EARSHOT_LOG_OUTPUT": str(work / f"{name}.jsonl"),
        }
        proc = subprocess.Popen([PY, "-m", "proxy", "--config", str(config)], env=env, cwd=ROOT)
        targets.append(Target(name, port, proc))
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx:
        port = _free_port()
        conf = work / "nginx.conf"
        conf.write_text(
            f"""daemon off; worker_processes 1; pid {work}/nginx.pid; error_log {work}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://127.0.0.1:{up}; proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;
      proxy_buffering off; proxy_read_timeout 3600s; }} }} }}
"""
        )
        targets.append(
            Target("nginx", port, subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)]))
        )
    else:
        targets.append(
            Target("nginx", 0, note="skipped: nginx not installed (apt-get install nginx-light)")
        )
    litellm = ROOT / "bench" / ".litellm" / "bin" / "litellm"
    if litellm.exists():
        port = _free_port()
        cfg = work / "litellm.yaml"
        cfg.write_text(
            "model_list:\n  - model_name: gpt-realtime\n    litellm_params:\n"
            f"      model: openai/gpt-realtime\n      api_base: http://127.0.0.1:{up}/v1\n      api_key: sk-bench\ngeneral_settings:\n  master_key: {LITELLM_KEY}\n"
        )
        targets.append(
            Target(
                "litellm",
                port,
                subprocess.Popen(
                    [
                        str(litellm),
                        "--config",
                        str(cfg),
                        "--port",
                        str(port),
                        "--host",
                        "127.0.0.1",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    # Its bundled model cost map, not a fetch from the internet.
                    env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
                ),
            )
        )
    else:
        targets.append(
            Target(
                "litellm",
                0,
                note="skipped: install with `python -m venv bench/.litellm && bench/.litellm/bin/pip install 'litellm[proxy]==1.106.2'`",
            )
        )
    if only is not None:
        for t in [t for t in targets if t.name not in only and t.name != "direct"]:
            if t.proc:
                t.proc.terminate()
                t.proc.wait(15)
            targets.remove(t)


# --- measurements ---------------------------------------------------------------------


async def ping_pong(url: str, make: Callable[[int], bytes], n: int) -> list[float]:
    """Round-trip times (ms) of n frames sent one after another on one session."""
    times = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, max_msg_size=0, headers=HEADERS) as ws,
    ):
        await ws.receive(timeout=5)
        for i in range(n):
            frame = make(i)
            start = time.perf_counter()
            await ws.send_frame(frame, aiohttp.WSMsgType.TEXT)
            while True:
                msg = await ws.receive(timeout=10)
                if _item_id(msg.data if isinstance(msg.data, bytes) else msg.data.encode()) == i:
                    break
            times.append((time.perf_counter() - start) * 1000)
    return times


async def back_to_back(
    url: str, make: Callable[[int], bytes], n: int, pids: list[int], window: int = 32
) -> tuple[float, float]:
    """n round trips on one session as fast as they go, at most `window` in flight (the
    sender waits for answers, so nothing queues without bound); returns round trips per
    second and the CPU seconds of `pids` meanwhile."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, max_msg_size=0, headers=HEADERS) as ws,
    ):
        await ws.receive(timeout=5)
        room = asyncio.Semaphore(window)

        async def reader() -> None:
            answered = 0
            while answered < n:
                msg = await ws.receive(timeout=10)
                data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                if _item_id(data) is not None:
                    answered += 1
                    room.release()

        before = cpu_seconds(pids)
        start = time.perf_counter()
        task = asyncio.create_task(reader())
        for i in range(n):
            await room.acquire()
            await ws.send_frame(make(i), aiohttp.WSMsgType.TEXT)
        await task
        elapsed = time.perf_counter() - start
        return n / elapsed, cpu_seconds(pids) - before


async def paced(
    url: str,
    sessions: int,
    per_session_rate: float,
    seconds: float,
    make: Callable[[int], bytes],
    pids: list[int] | None = None,
) -> tuple[list[float], float, float]:
    """Round-trip times (ms) under a paced load; returns them, the achieved round trips/s
    and the CPU seconds of `pids` while the load ran (connecting excluded)."""
    rtts: list[float] = []
    done = 0
    window: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = [
            await http.ws_connect(url, max_msg_size=0, headers=HEADERS) for _ in range(sessions)
        ]
        for ws in sockets:
            await ws.receive(timeout=10)
        begin = time.perf_counter() + 0.05
        end = begin + seconds

        async def one(ws: aiohttp.ClientWebSocketResponse[Any], offset: float) -> None:
            nonlocal done
            sent: dict[int, float] = {}

            async def reader() -> None:
                nonlocal done
                async for msg in ws:
                    data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                    i = _item_id(data)
                    if i is not None and i in sent:
                        rtts.append((time.perf_counter() - sent.pop(i)) * 1000)
                        done += 1

            task = asyncio.create_task(reader())
            interval = 1 / per_session_rate
            i = 0
            while True:
                at = begin + offset + i * interval
                if at >= end:
                    break
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent[i] = time.perf_counter()
                await ws.send_frame(make(i), aiohttp.WSMsgType.TEXT)
                i += 1
            await asyncio.sleep(0.3)
            await ws.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        async def meter() -> None:
            await asyncio.sleep(max(0.0, begin - time.perf_counter()))
            before = cpu_seconds(pids or [])
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            window.append(cpu_seconds(pids or []) - before)

        await asyncio.gather(
            meter(), *(one(ws, k / (sessions * per_session_rate)) for k, ws in enumerate(sockets))
        )
    return rtts, done / seconds, window[0]


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@dataclass
class Row:
    latency: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    frames: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    b2b_cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(BURSTS, 0.0))
    b2b_frames: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BURSTS, 0))
    b2b_rate: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in BURSTS})
    max_rate: float = 0.0
    sessions: int = 0
    load_cpu: float = float("nan")
    idle_kb: float = float("nan")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="earshot-bench-"))
    upstream = start_upstream(work)
    targets: list[Target] = []
    try:
        await _wait_ws(f"http://127.0.0.1:{upstream.port}/v1/realtime")
        only = set(args.only.split(",")) if args.only else None
        start_targets(work, upstream.port, only, targets)
        live = [t for t in targets if not t.note]
        for t in live:
            await _wait_ws(t.url, timeout=60)
        rows = {t.name: Row() for t in live}

        print(
            f"latency: {args.rounds} rounds × {args.samples} round trips per kind, targets interleaved",
            flush=True,
        )
        for _ in range(args.rounds):
            for t in live:
                for kind, make in KINDS.items():
                    before = cpu_seconds(t.pids())
                    rows[t.name].latency[kind] += await ping_pong(t.url, make, args.samples)
                    rows[t.name].cpu[kind] += cpu_seconds(t.pids()) - before
                    rows[t.name].frames[kind] += 2 * args.samples  # a round trip is two frames

        print(
            f"back to back: {args.rounds} rounds × {args.burst} round trips per kind, interleaved",
            flush=True,
        )
        for _ in range(args.rounds):
            for t in live:
                for kind in BURSTS:
                    rate, cpu = await back_to_back(t.url, KINDS[kind], args.burst, t.pids())
                    rows[t.name].b2b_rate[kind].append(rate)
                    rows[t.name].b2b_cpu[kind] += cpu
                    rows[t.name].b2b_frames[kind] += 2 * args.burst

        print("max paced rate (20 ms appends, 16 sessions, p99 ≤ 5 ms)", flush=True)
        for t in live:
            for rate in args.rates:
                rtts, achieved, _ = await paced(
                    t.url, 16, rate / 16, args.step_seconds, lambda i: audio_frame(i, AUDIO_20MS)
                )
                ok = p(rtts, 0.99) <= 5.0 and achieved >= 0.95 * rate
                print(
                    f"  {t.name:10} {rate:6d} rt/s: p99 {p(rtts, 0.99):7.2f} ms, achieved {achieved:8.0f} rt/s {'ok' if ok else 'FAIL'}",
                    flush=True,
                )
                if not ok:
                    break
                rows[t.name].max_rate = 2 * achieved  # frames/s through the target

        print("concurrent audio sessions (50 frames/s each way, 6.4 KB, p99 ≤ 20 ms)", flush=True)
        for t in live:
            for n in args.sessions:
                rtts, achieved, cpu = await paced(
                    t.url, n, 50.0, args.step_seconds, audio_frame, t.pids()
                )
                ok = p(rtts, 0.99) <= 20.0 and achieved >= 0.95 * 50 * n
                print(
                    f"  {t.name:10} {n:4d} sessions: p99 {p(rtts, 0.99):7.2f} ms, {achieved:7.0f} rt/s {'ok' if ok else 'FAIL'}",
                    flush=True,
                )
                if not ok:
                    break
                rows[t.name].sessions = n
                if n <= LOAD_SESSIONS:
                    # Two frames through the target per round trip.
                    rows[t.name].load_cpu = cpu / (2 * achieved * args.step_seconds) * 1e6

        print(f"idle memory: {args.idle} sessions", flush=True)
        for t in live:
            if t.name == "direct":
                continue
            before = rss_bytes(t.pids())
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                sockets = []
                for _ in range(args.idle):
                    ws = await http.ws_connect(t.url, headers=HEADERS)
                    await ws.receive(timeout=10)
                    sockets.append(ws)
                await asyncio.sleep(1.0)
                after = rss_bytes(t.pids())
                for ws in sockets:
                    await ws.close()
            rows[t.name].idle_kb = (after - before) / args.idle / 1024
    finally:
        for t in [*targets, upstream]:
            if t.proc and t.proc.poll() is None:
                t.proc.send_signal(signal.SIGTERM if t.name != "nginx" else signal.SIGQUIT)
        for t in [*targets, upstream]:
            if t.proc:
                try:
                    t.proc.wait(15)
                except subprocess.TimeoutExpired:
                    t.proc.kill()

    direct = rows["direct"].latency
    out: dict[str, Any] = {}
    for name, row in rows.items():
        proxied = name != "direct" and row.frames["audio"] > 0
        out[name] = {
            **{
                f"added_{q}_{kind}_ms": p(row.latency[kind], v) - p(direct[kind], v)
                for kind in KINDS
                for q, v in (("p50", 0.5), ("p99", 0.99))
            },
            **{f"rtt_p50_{kind}_ms": p(row.latency[kind], 0.5) for kind in KINDS},
            "cpu_us_per_frame": (row.cpu["audio"] + row.cpu["small"])
            / (row.frames["audio"] + row.frames["small"])
            * 1e6
            if proxied
            else None,
            "cpu_us_per_frame_newitem": row.cpu["newitem"] / row.frames["newitem"] * 1e6
            if proxied
            else None,
            "cpu_us_per_frame_full": row.cpu["full"] / row.frames["full"] * 1e6
            if proxied
            else None,
            "cpu_us_per_frame_load": row.load_cpu if proxied else None,
            **{
                f"cpu_us_per_frame_b2b_{kind}": row.b2b_cpu[kind] / row.b2b_frames[kind] * 1e6
                if proxied
                else None
                for kind in BURSTS
            },
            **{f"b2b_{kind}_per_s": p(row.b2b_rate[kind], 0.5) for kind in BURSTS},
            "max_frames_per_s": row.max_rate,
            "audio_sessions": row.sessions,
            "idle_kb_per_session": row.idle_kb if name != "direct" else None,
        }
    for t in targets:
        if t.note:
            out[t.name] = {"skipped": t.note}
    return out


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    return format(v, spec)


def report(results: dict[str, Any]) -> str:
    lines = [
        f"{'target':10} {'+p50 audio':>11} {'+p99 audio':>11} {'+p50 small':>11} {'+p99 small':>11} {'+p50 full':>11} {'CPU µs/fr':>10} {'CPU full':>9} {'CPU load':>9} {'b2b audio':>10} {'b2b small':>10} {'b2b rt/s':>9} {'max fr/s':>9} {'sessions':>9} {'KB/idle':>8}"
    ]
    for name, r in results.items():
        if "skipped" in r:
            lines.append(f"{name:10} {r['skipped']}")
            continue
        lines.append(
            f"{name:10} {_fmt(r['added_p50_audio_ms'], '10.3f')}ms {_fmt(r['added_p99_audio_ms'], '10.3f')}ms "
            f"{_fmt(r['added_p50_small_ms'], '10.3f')}ms {_fmt(r['added_p99_small_ms'], '10.3f')}ms "
            f"{_fmt(r['added_p50_full_ms'], '10.3f')}ms "
            f"{_fmt(r['cpu_us_per_frame'], '10.1f')} {_fmt(r['cpu_us_per_frame_full'], '9.1f')} "
            f"{_fmt(r['cpu_us_per_frame_load'], '9.1f')} "
            f"{_fmt(r['cpu_us_per_frame_b2b_audio'], '10.1f')} {_fmt(r['cpu_us_per_frame_b2b_small'], '10.1f')} "
            f"{_fmt(r['b2b_audio_per_s'], '9.0f')} "
            f"{_fmt(r['max_frames_per_s'], '9.0f')} {r['audio_sessions']:9d} {_fmt(r['idle_kb_per_session'], '8.1f')}"
        )
    lines.append(
        "(+p50/+p99: added round-trip ms over direct, paced ping-pong; CPU: µs of the target's"
        " CPU per relayed frame, paced audio+small, `full` events, 100 audio sessions, and back"
        " to back; b2b rt/s: audio round trips per second back to back; sessions: the"
        " ceiling at 50 frames/s each way with p99 ≤ 20 ms)"
    )
    return "\n".join([*lines, "", *targets(results)])


def _ratio(a: Any, b: Any) -> float:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or b == 0:
        return float("nan")
    return float(a) / float(b)


def targets(results: dict[str, Any]) -> list[str]:
    """Issue #14's targets, each against `parse` (or as the issue states it)."""
    e, base = results.get("earshot", {}), results.get("parse", {})
    if "added_p50_audio_ms" not in e or "added_p50_audio_ms" not in base:
        return []
    rows: list[tuple[str, float, str, bool]] = []

    def at_most(what: str, key: str, limit: float) -> None:
        r = _ratio(e.get(key), base.get(key))
        rows.append((what, r, f"≤ {limit}×", r <= limit))

    at_most("CPU per frame, audio+small, paced", "cpu_us_per_frame", 1.15)
    at_most("CPU per frame, audio, back to back", "cpu_us_per_frame_b2b_audio", 1.15)
    at_most("CPU per frame, small, back to back", "cpu_us_per_frame_b2b_small", 1.15)
    at_most("added p50, audio", "added_p50_audio_ms", 1.2)
    at_most("added p50, small", "added_p50_small_ms", 1.2)
    at_most("CPU per frame, full", "cpu_us_per_frame_full", 1.5)
    at_most("CPU per frame, every delta a new item", "cpu_us_per_frame_newitem", 1.15)
    at_most(f"CPU per frame, {LOAD_SESSIONS} audio sessions", "cpu_us_per_frame_load", 1.2)
    r = _ratio(e.get("audio_sessions"), base.get("audio_sessions"))
    rows.append(("session ceiling", r, "≥ 0.85×", r >= 0.85))
    lith, bare = results.get("litellm", {}), results.get("bare", {})
    if "added_p50_audio_ms" in lith:
        r = _ratio(lith["added_p50_audio_ms"], e["added_p50_audio_ms"])
        rows.append(("LiteLLM/earshot added p50, audio", r, "≥ 3×", r >= 3))
        lead = _ratio(lith["added_p50_small_ms"], bare.get("added_p50_small_ms"))
        r = _ratio(lith["added_p50_small_ms"], e["added_p50_small_ms"]) / lead
        rows.append(("small: earshot's lead over LiteLLM / bare's", r, "≥ 0.85×", r >= 0.85))
    out = [f"{'earshot against the targets (ratios to parse)':48} {'measured':>9} {'target':>9}"]
    out += [
        f"{what:48} {_fmt(value, '9.2f')} {limit:>9} {'met' if ok else 'MISSED'}"
        for what, value, limit, ok in rows
    ]
    kb = e.get("idle_kb_per_session")
    if isinstance(kb, float) and kb > 0:
        out.append(
            f"{'memory per idle session, KB':48} {kb:9.1f} {'≤ 32':>9} {'met' if kb <= 32 else 'MISSED'}"
        )
    else:  # the interpreter reuses memory the heavy phases left it
        out.append(f"{'memory per idle session':48} {'—':>9} {'≤ 32 KB':>9} see bench/soak.py")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated targets (direct is always run)")
    args = parser.parse_args()
    args.rounds, args.samples = (2, 200) if args.quick else (5, 1000)
    args.step_seconds = 1.5 if args.quick else 3.0
    args.rates = (
        [500, 2000, 4000] if args.quick else [500, 1000, 2000, 3000, 4000, 6000, 8000, 11000, 15000]
    )
    args.sessions = (
        [10, 50, 100]
        if args.quick
        else [25, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1000, 1300, 1600, 2000]
    )
    args.burst = 2000 if args.quick else 10000
    args.idle = 100 if args.quick else 500
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    results = asyncio.run(run(args))
    table = report(results)
    print()
    print(table)
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "quick": args.quick,
    }
    (RESULTS / ("relay-quick.json" if args.quick else "relay.json")).write_text(
        json.dumps({"meta": meta, "results": results, "table": table}, indent=1)
    )


if __name__ == "__main__":
    main()
