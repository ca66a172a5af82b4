"""Shared test data loaders: the spec's examples, the SDK field lists, the corpus."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

DATA = Path(__file__).parent / "data"
PROTOCOLS = ("ga", "beta", "translation")


def parse_lenient(text: str) -> list[dict[str, Any]]:
    """The spec's examples are JSON with comments, trailing commas, several objects."""
    text = re.sub(r"(?m)(^|\s)//[^\n]*", r"\1", text)
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    decoder = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = decoder.raw_decode(text, i)
        # Known quirk: the DTMF example's type has a leading space.
        obj["type"] = obj["type"].strip()
        out.append(obj)


def spec_examples() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(schema, protocol, direction, event) for every example in the spec."""
    rows = json.loads((DATA / "spec_examples.json").read_text())
    return [
        (r["schema"], r["protocol"], r["direction"], obj)
        for r in rows
        for obj in parse_lenient(r["example"])
    ]


def corpus(proto: str | None = None, direction: str | None = None) -> list[tuple[str, str, bytes]]:
    """(protocol, direction, frame) for every corpus event."""
    out = []
    for path in sorted((DATA / "corpus").glob("*.jsonl")):
        p, d = path.stem.split("_")
        if (proto and p != proto) or (direction and d != direction):
            continue
        out += [(p, d, line) for line in path.read_bytes().splitlines() if line]
    return out


def sdk_field_paths() -> list[tuple[str, str, str, str, str]]:
    """(protocol, direction, event type, field path, type) from the SDK's field lists."""
    out = []
    for path in sorted((DATA / "reference").glob("sdk-*-fields.txt")):
        proto, direction = path.stem.removeprefix("sdk-").removesuffix("-fields").split("_")
        event = ""
        for line in path.read_text().splitlines():
            if line.startswith("## "):
                event = line.split()[1]
            elif line.strip():
                field, _, typ = line.strip().rpartition(": ")
                out.append((proto, direction, event, field, typ))
    return out


def recorded_sessions() -> list[tuple[str, list[tuple[str, bytes]]]]:
    """(name, [(direction, frame)]) for every recorded WebSocket session, in wire order."""
    out = []
    for path in sorted((DATA / "recordings" / "test_openai_ws").glob("*.yaml")):
        interactions = yaml.safe_load(path.read_text())["interactions"]
        frames = [
            ("client" if i["direction"] == "sent" else "server", orjson.dumps(i["data"]))
            for i in interactions
            if i.get("kind") == "message"
        ]
        out.append((path.stem, frames))
    return out


def recorded_exchanges() -> list[tuple[str, dict[str, Any]]]:
    """(name, interaction) for every recorded REST exchange (VCR cassettes)."""
    out = []
    for path in sorted((DATA / "recordings" / "test_webrtc").glob("*.yaml")):
        for i, interaction in enumerate(yaml.safe_load(path.read_text())["interactions"]):
            out.append((f"{path.stem}[{i}]", interaction))
    return out


def sdk_event_types() -> set[str]:
    """Every event type the `openai` SDK defines, in any protocol and direction."""
    return {event for _, _, event, _, _ in sdk_field_paths()}


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def process(argv: list[str], **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A child process that does not outlive the test: killed if still running at the end."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(argv, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def terminated(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as a container runtime sends it; then the exit status (within 30 s)."""
    proc.send_signal(signal.SIGTERM)
    return await asyncio.to_thread(proc.wait, 30)


async def sessions_ended(proxy: Any) -> None:
    """Wait until the proxy under test has finished every session (its records written):
    a client's close returns when the proxy answers, a moment before that."""
    from proxy.context import APP

    await asyncio.wait_for(proxy.app[APP].idle.wait(), 5)


async def wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until an earshot process answers `/healthz` (it must not exit first)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            assert proc.poll() is None, "earshot exited early"
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("earshot did not become healthy")


async def lockstep(ws: Any, fake: Any, frames: list[tuple[str, bytes]]) -> list[bytes]:
    """Play frames through the proxy in wire order (client frames from `ws`, server
    frames from the fake upstream), each received before the next is sent; what arrived
    on the other side, in order."""
    arrived = []
    for direction, frame in frames:
        if direction == "client":
            await ws.send_frame(frame, aiohttp.WSMsgType.TEXT)
            arrived.append(await fake.next_frame())
        else:
            await fake.send(frame)
            arrived.append((await ws.receive(timeout=5)).data.encode())
    return arrived


async def scripted_session(proxy: Any, **ws_kwargs: Any) -> None:
    """The demo's scripted conversation through `proxy`, until its `response.done` and
    the 300 ms of audio it carries have played (a client that listens to the answer)."""
    from proxy.demo import conversation

    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime", **ws_kwargs)
    for event in conversation():
        await ws.send_str(orjson.dumps(event).decode())
    async for msg in ws:
        if '"response.done"' in msg.data:
            break
    await asyncio.sleep(0.35)
    await ws.close()
    await asyncio.sleep(0.05)


# By recorder id: (the recorder, its session). Cleared after each test (conftest): a
# compiled `Recorder` (mypyc) takes no weak reference.
OFFLINE: dict[int, tuple[Any, Any]] = {}


def session_of(recorder: Any) -> Any:
    """A `Session` without sockets around `recorder` (one per recorder): what a live
    session does with a frame before it is sent, for tests of records and redaction."""
    from proxy.session import Session

    held = OFFLINE.get(id(recorder))
    if held is None or held[0] is not recorder:
        held = OFFLINE[id(recorder)] = (recorder, Session(recorder, recorder.info))
    return held[1]


def take(recorder: Any, direction: str, data: bytes) -> Any:
    """Decode, follow and record one text frame as a session does; the event or None."""
    return session_of(recorder).take(direction, data)


def observe(tracker: Any, direction: str, event: Any, now: float) -> None:
    """What a session does for the turns with one decoded event: a config event is
    followed into the tracker's `SessionInfo` first, then the tracker observes it."""
    if getattr(event, "session", None) is not None:
        tracker.info.follow(direction, event)
    tracker.observe(direction, event, now)
