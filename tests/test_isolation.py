"""
Isolation between sessions (SPEC §1.8): one tenant sharing the proxy with honest users
cannot make them lose traffic or records. No cookie crosses sessions; admission follows
the HTTP parser on every request of a connection and caps each peer; probes answer on
their own port while traffic is refused; a session that floods is folded into counts;
hostile ids cost what ids of 128 characters do.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

import protocol
from proxy.admission import AdmittingRunner
from proxy.app import make_app
from proxy.budget import RecordBudget
from proxy.log import make_logger
from proxy.pricing import shipped_table
from proxy.records import EventPolicy, Recorder
from proxy.redact import Policy, Redactor
from proxy.settings import parse
from proxy.turns import TurnTracker
from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    free_port,
    observe,
    process,
    session_of,
    sessions_ended,
    take,
    wait_healthy,
)

# --- cookies ----------------------------------------------------------------------------


async def test_a_cookie_the_upstream_sets_for_one_client_never_reaches_another(
    make_proxy: ProxyFactory, upstream: Any, fake: FakeUpstream
) -> None:
    """
    The upstream answers client A with `Set-Cookie`; client B's next REST call and its
    WebSocket handshake reach the upstream without it (the upstream client keeps no jar).
    The upstream is dialled by name, as a real one is (a jar ignores cookies from an IP).
    """
    proxy = await make_proxy(upstream={"url": f"http://localhost:{upstream[1].port}"})
    fake.answers.append(
        (
            200,
            [
                ("Set-Cookie", "session=A-SECRET-COOKIE; Path=/"),
                ("Content-Type", "application/json"),
            ],
            b"{}",
        )
    )
    await proxy.post(
        "/v1/realtime/client_secrets", data=b"{}", headers={"Authorization": "Bearer A"}
    )
    # Client B is another program: its own HTTP client, which never saw A's cookie.
    async with aiohttp.ClientSession() as b:
        await b.post(
            proxy.make_url("/v1/realtime/client_secrets"),
            data=b"{}",
            headers={"Authorization": "Bearer B"},
        )
        ws = await b.ws_connect(
            proxy.make_url("/v1/realtime?model=gpt-realtime"), headers={"Authorization": "Bearer B"}
        )
        await ws.receive(timeout=5)
        await ws.close()

    assert 2 == len(fake.requests)
    assert "Cookie" not in fake.requests[1]["headers"]
    assert "Cookie" not in fake.handshakes[-1]["headers"]


# --- admission --------------------------------------------------------------------------

LIMITS = {
    "header_timeout": 0.5,
    "keepalive_timeout": 1.0,
    "max_pending_connections": 12,
    "max_pending_per_peer": 5,
}


@pytest.fixture
async def served(upstream: Any) -> Any:
    """earshot served as `earshot` serves it (its runner and admission), tight limits."""
    _fake, server = upstream
    settings = parse(
        {"upstream": {"url": str(server.make_url("")).rstrip("/")}, "limits": LIMITS}, environ={}
    )
    runner = AdmittingRunner.for_settings(
        make_app(settings, make_logger(MemorySink())), settings.limits
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner, runner.addresses[0][1]
    await runner.cleanup()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (reading what it sends)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
        return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def _trickle(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    for i in range(len(data)):
        if writer.is_closing():
            return
        writer.write(data[i : i + 1])
        await asyncio.sleep(every)


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


async def _trickled_request_is_cut_off(
    runner: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Trickle a request a byte every 0.2 s: the connection must be closed within 3 s
    (the header timeout is 0.5 s), counted as timed out."""
    trickle = asyncio.create_task(_trickle(writer, HEALTHZ, 0.2))
    try:
        assert await _closed_within(reader, 3)
        assert 1 == runner.pending.timed_out
    finally:
        trickle.cancel()
        writer.close()


async def test_blank_lines_first_do_not_buy_a_trickled_request_more_time(served: Any) -> None:
    """
    A connection that sends `\\r\\n\\r\\n` first (which a byte-pattern watch took for the
    end of the headers) and then trickles a request is closed after `header_timeout`.
    """
    runner, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\r\n\r\n")

    await _trickled_request_is_cut_off(runner, reader, writer)


async def test_a_second_request_on_a_kept_alive_connection_has_the_same_header_timeout(
    served: Any,
) -> None:
    """
    One complete request, answered; then a second one trickled on the same connection:
    closed after `header_timeout` from its first byte, as the first would have been.
    """
    runner, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEALTHZ)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")

    await _trickled_request_is_cut_off(runner, reader, writer)


async def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(
    served: Any,
) -> None:
    """
    A connection that sends nothing after its answer is closed after
    `limits.keepalive_timeout` (aiohttp's default would hold it for an hour).
    """
    runner, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEALTHZ)
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)

    assert await _closed_within(reader, 4)
    assert 0 == runner.pending.count
    writer.close()


async def test_one_peer_cannot_take_every_pending_slot(served: Any) -> None:
    """
    Past `limits.max_pending_per_peer` connections still sending headers, a peer's new
    connections are closed at once; its first ones are not; the slots free up as they go.
    """
    runner, port = served
    opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
    await asyncio.sleep(0.1)

    closed = await asyncio.gather(*(_closed_within(r, 0.2) for r, _ in opened))
    assert [False] * 5 + [True] * 3 == closed
    assert 3 == runner.pending.refused
    assert {"127.0.0.1": 5} == runner.pending.by_peer
    for _, writer in opened:
        writer.close()
    await asyncio.sleep(0.1)
    assert 0 == runner.pending.count


async def test_idle_kept_alive_connections_count_against_the_cap(served: Any) -> None:
    """
    The global cap counts every connection that is not yet a request or a session: idle
    keep-alive connections too, and a connection in a request does not.
    """
    runner, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEALTHZ)
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    await asyncio.sleep(0.05)

    assert 1 == runner.pending.count
    writer.close()


async def test_a_session_is_not_pending(served: Any) -> None:
    """
    A WebSocket session is handed to aiohttp's protocol: it does not count, and its
    frames outlive `header_timeout` and `keepalive_timeout`.
    """
    runner, port = served
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"http://127.0.0.1:{port}/v1/realtime?model=gpt-realtime")
        await ws.receive(timeout=5)
        assert 0 == runner.pending.count
        await asyncio.sleep(1.5)
        await ws.send_str('{"type":"input_audio_buffer.commit"}')
        assert not ws.closed
        await ws.close()


# --- the admin port ---------------------------------------------------------------------


async def test_probes_answer_on_the_admin_port_while_traffic_is_refused(
    upstream: Any, tmp_path: Path
) -> None:
    """
    With every pending slot of the traffic port taken by idle sockets from one peer, the
    traffic port refuses a new connection, and `/healthz`, `/readyz` and `/metrics` answer
    on `listen.admin_port` (a real process).
    """
    _, server = upstream
    port, admin = free_port(), free_port()
    config = tmp_path / "earshot.yaml"
    config.write_text(
        f"listen: {{host: 127.0.0.1, port: {port}, admin_port: {admin}}}\n"
        f"upstream: {{url: '{str(server.make_url('')).rstrip('/')}'}}\n"
        "limits: {max_pending_per_peer: 20, max_pending_connections: 20, header_timeout: 30}\n"
        f"log: {{output: '{tmp_path / 'log.jsonl'}'}}\n"
    )
    with process([sys.executable, "-m", "proxy", "--config", str(config)]) as proc:
        await wait_healthy(admin, proc)
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await _closed_within(reader, 2)
        writer.close()
        async with aiohttp.ClientSession() as http:
            statuses = []
            for path in ("/healthz", "/readyz", "/metrics"):
                async with http.get(f"http://127.0.0.1:{admin}{path}") as resp:
                    statuses.append(resp.status)
        for _, w in idle:
            w.close()
    assert [200, 200, 200] == statuses


# --- record budgets ---------------------------------------------------------------------


class Clock:
    """A hand-turned clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_session_over_its_budget_is_folded_into_counts_and_nothing_is_lost() -> None:
    """
    With 10 records a second and a burst of 5, 100 unknown events at one instant write 5
    records; the other 95 are a `realtime.suppressed` record (by kind and type, with
    bytes) once the budget has tokens again; then records flow again.
    """
    clock = Clock()
    sink = MemorySink()
    budget = RecordBudget(10, 5, clock=clock, now_ts=lambda: "2026-12-06T00:00:00.000000Z")
    recorder = Recorder(
        make_logger(sink), Redactor(Policy()), EventPolicy({"default": "full"}), budget=budget
    )
    frame = b'{"type":"acme.flood","n":1}'
    for _ in range(100):
        take(recorder, "client", frame)
    assert 5 == len(sink.records("realtime.event"))
    assert [] == sink.records("realtime.suppressed")

    clock.now = 1.0
    take(recorder, "client", frame)

    (suppressed,) = sink.records("realtime.suppressed")
    assert 95 == suppressed["records"]
    assert {"realtime.event": {"acme.flood": 95}} == suppressed["count"]
    assert 95 * len(frame) == suppressed["bytes"]
    assert "client" == suppressed["direction"]
    assert 6 == len(sink.records("realtime.event"))


def test_what_the_budget_held_back_is_reported_at_the_close() -> None:
    """
    A session that ends while over its budget still reports what it did not write.
    """
    sink = MemorySink()
    budget = RecordBudget(1, 1, clock=Clock())
    recorder = Recorder(
        make_logger(sink), Redactor(Policy()), EventPolicy({"default": "full"}), budget=budget
    )
    for _ in range(10):
        take(recorder, "server", b"not json")
    recorder.close()

    (suppressed,) = sink.records("realtime.suppressed")
    assert {"realtime.undecodable": {"-": 9}} == suppressed["count"]
    assert 10 == session_of(recorder).counts["server"].undecodable


async def test_a_flooding_session_leaves_an_honest_sessions_records_whole(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    A real client floods 20,000 empty frames while an honest one has a conversation:
    every one of the honest session's records is written, and the flood's records are
    written or counted as suppressed — each of its frames is accounted for.
    """
    proxy = await make_proxy(
        limits={"session_records_per_second": 50, "session_records_burst": 100}
    )
    fake.scripted = False
    flood = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    honest = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await flood.receive(timeout=5)
    await honest.receive(timeout=5)
    frames = 20_000

    async def flooding() -> None:
        for _ in range(frames):
            await flood.send_str("")

    task = asyncio.create_task(flooding())
    events = [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": f"turn {i}"}],
            },
        }
        for i in range(20)
    ]
    for event in events:
        await honest.send_str(orjson.dumps(event).decode())
        await asyncio.sleep(0.01)
    await task
    for _ in range(frames + len(events)):
        await fake.next_frame()
    await flood.close()
    await honest.close()
    await sessions_ended(proxy)

    by_conn: dict[str, list[dict[str, Any]]] = {}
    for record in sink.records():
        by_conn.setdefault(record.get("conn", ""), []).append(record)
    texts = sorted(
        r["payload"]["item"]["content"][0]["text"]
        for rs in by_conn.values()
        for r in rs
        if r["event"] == "realtime.event" and r["type"] == "conversation.item.create"
    )
    assert sorted(f"turn {i}" for i in range(20)) == texts
    (flood_records,) = [
        rs for rs in by_conn.values() if any(r["event"] == "realtime.suppressed" for r in rs)
    ]
    written = sum(1 for r in flood_records if r["event"] == "realtime.undecodable")
    suppressed = sum(r["records"] for r in flood_records if r["event"] == "realtime.suppressed")
    assert frames == written + suppressed
    assert suppressed > 0
    (close,) = [r for r in flood_records if r["event"] == "ws.close"]
    assert frames == close["undecodable"]
    metrics = await (await proxy.get("/metrics")).text()
    assert f"earshot_records_suppressed_total {float(suppressed)}" in metrics


# --- hostile ids ------------------------------------------------------------------------


def test_hostile_ids_cost_what_ids_of_128_characters_do() -> None:
    """
    Eight open responses with 32 calls and 64 audio items, every id 200,000 characters:
    the turn tracker keeps each id cut to 128, so a session holds a few KB, not 109 MB.
    """
    events = []
    for r in range(8):
        rid = f"resp_{r}_" + "R" * 200_000
        events.append(
            {
                "type": "response.created",
                "response": {"id": rid, "object": "realtime.response", "status": "in_progress"},
            }
        )
        for c in range(32):
            cid = f"call_{r}_{c}_" + "C" * 200_000
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "response_id": rid,
                    "item_id": "i",
                    "output_index": 0,
                    "call_id": cid,
                    "name": "N" * 200_000,
                    "arguments": "{}",
                }
            )
        for i in range(64):
            iid = f"item_{r}_{i}_" + "I" * 200_000
            events.append(
                {
                    "type": "response.output_audio.delta",
                    "response_id": rid,
                    "item_id": iid,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": "AAAA",
                }
            )
    frames = [orjson.dumps(e) for e in events]
    del events
    tracker = TurnTracker(lambda _record: None, shipped_table())
    gc.collect()
    tracemalloc.start()
    for frame in frames:
        observe(tracker, "server", protocol.decode(frame, "server"), 1.0)
    gc.collect()
    kept, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert kept < 256 * 1024, kept


async def test_a_refused_upgrade_ends_its_connection(served: Any, fake: FakeUpstream) -> None:
    """
    An upgrade the upstream refuses is answered and its connection closed (aiohttp ends
    every connection that asked for an upgrade), and nothing of it stays pending.
    """
    fake.refuse = (401, b'{"error": {"message": "no"}}')
    runner, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)

    assert head.startswith(b"HTTP/1.1 401")
    assert await _closed_within(reader, 2)
    writer.close()
    await asyncio.sleep(0.05)
    assert 0 == runner.pending.count
