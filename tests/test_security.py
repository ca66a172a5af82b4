"""
What an attacker tried — a hostile client or a compromised upstream, on loopback — and
what earshot does: keys never reach a log line, stderr or another host; hostile input
never loses a record or stalls the proxy. docs/reliability.md has the table.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from proxy.credentials import is_secret_name
from proxy.log import make_logger
from proxy.records import EventPolicy, Recorder
from proxy.redact import Policy, Redactor
from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream
from tests.helpers import free_port, process, take, wait_healthy
from tests.test_cli import ROOT

KEY = "sk-proj-ATTACKERsawTHIS0123456789abcdef"
BROWSER_KEY = "ek_68af2b7c1d3e4f5aBROWSERkey"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirected_handshake_is_returned_not_followed(
    make_proxy: ProxyFactory,
    fake: FakeUpstream,
    sink: MemorySink,
    aiohttp_server: Any,
    status: int,
) -> None:
    """
    An upstream answering the upgrade with a redirect to another host: earshot never
    dials it (the client's keys would go there); the client gets the 3xx as it came,
    status, `Location` and body, and the log says so.
    """
    dialled: list[dict[str, str]] = []

    async def other(request: web.Request) -> web.Response:
        dialled.append(dict(request.headers))
        return web.Response(status=400)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", other)
    other_host = await aiohttp_server(app)
    location = str(other_host.make_url("/v1/realtime?model=gpt-realtime"))
    fake.refuse = (status, b'{"moved":true}')
    fake.refuse_headers = {"Location": location}
    proxy = await make_proxy()

    got = await proxy.get(
        "/v1/realtime?model=gpt-realtime",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
            "Sec-WebSocket-Protocol": f"realtime, openai-insecure-api-key.{BROWSER_KEY}",
            "api-key": KEY,
            "X-Api-Key": KEY,
        },
        allow_redirects=False,
    )

    assert (status, location, b'{"moved":true}') == (
        got.status,
        got.headers["Location"],
        await got.read(),
    )
    assert [] == dialled
    (rejected,) = sink.records("ws.rejected")
    assert ("handshake_redirect", status) == (rejected["kind"], rejected["status"])
    assert KEY not in sink.text()
    assert BROWSER_KEY not in sink.text()


async def test_the_subprotocol_the_upstream_chose_is_redacted(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    An upstream that picks the browser's key element as its subprotocol: `ws.open`
    logs it fingerprinted, like the offered list.
    """
    fake.protocols = (f"openai-insecure-api-key.{BROWSER_KEY}",)
    proxy = await make_proxy()
    ws = await proxy.ws_connect(
        "/v1/realtime?model=gpt-realtime",
        protocols=("realtime", f"openai-insecure-api-key.{BROWSER_KEY}"),
    )
    await ws.receive(timeout=5)
    await ws.close()

    (opened,) = sink.records("ws.open")
    assert opened["subprotocol"].startswith("openai-insecure-api-key.[redacted:secret:")
    assert BROWSER_KEY not in sink.text()


async def _raw_request(proxy: Any, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(proxy.server.host, proxy.server.port)
    writer.write(request)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    return head


@pytest.mark.parametrize(
    ("request_head", "events"),
    [
        (
            b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nUser-Agent: caf\xe9 \xff\r\n"
            b"Content-Length: 2\r\nContent-Type: application/json\r\n\r\n{}",
            {"http.request", "http.exchange"},
        ),
        (
            b"GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nUser-Agent: \xc3\x28\xa0\xa1\r\n\r\n",
            {"ws.open"},
        ),
    ],
)
async def test_a_header_that_is_not_utf8_never_loses_its_record(
    proxy: Any, fake: FakeUpstream, sink: MemorySink, request_head: bytes, events: set[str]
) -> None:
    """
    A client putting bytes that are not UTF-8 in a header cannot hide its activity: the
    record is written, the bytes escaped (`\\xNN`), never `log.render_failed`.
    """
    await _raw_request(proxy, request_head)
    await asyncio.sleep(0.2)

    written = {r["event"] for r in sink.records()}
    assert events <= written
    assert "log.render_failed" not in written
    assert "\\xff" in sink.text() or "\\xa0" in sink.text()


def test_unicode_line_breaks_are_escaped_in_records() -> None:
    """
    U+2028, U+2029 and U+0085 inside a string are written escaped, so a reader that splits
    on Unicode line breaks still sees one record per line, and the value reads back equal.
    """
    from proxy.log import render

    text = "one\u2028two\u2029three\u0085four"

    line = render(None, "info", {"event": "realtime.event", "text": text})

    assert 1 == len(line.decode().splitlines())
    assert text == orjson.loads(line)["text"]


MALFORMED = [
    b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\x01\r\n\r\n",
    b"GET /v1/realtime?api-key=KEY\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nX-Big: KEY" + b"A" * 9000 + b"\r\n\r\n",
    b"GET /v1/realtime HTTP/1.1\r\nAuth orization: KEY\r\n\r\n",
    b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /v1/realtime HTTP/9.9\r\nAuthorization: Bearer KEY\r\n\r\n",
    b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer KEY\r\n"
    b'Content-Length: 100\r\n\r\n{"a":',
]


def _slices(secret: str, n: int = 12) -> list[str]:
    return [secret[i : i + n] for i in range(len(secret) - n + 1)]


async def test_malformed_requests_put_no_key_on_stdout_or_stderr(
    upstream: Any, tmp_path: Path
) -> None:
    """
    Requests aiohttp's parser refuses (control characters, a header over 8 KB, a bad
    header name, a bad chunk size, a bad HTTP version, an aborted upload) with a key in
    them: the shipped default config, and neither stdout, stderr nor the log has the key
    or any 12-character slice of it; the log has a `library.log` record for each.
    """
    _fake, server = upstream
    port = free_port()
    env = {**os.environ, "EARSHOT_UPSTREAM_URL": str(server.make_url("")).rstrip("/")}
    with process(
        [sys.executable, "-m", "proxy", "--config", "config/default.yaml", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        await wait_healthy(port, proc)
        for request in MALFORMED:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request.replace(b"KEY", KEY.encode()))
            await writer.drain()
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(reader.read(1024), 0.5)
            writer.close()
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)

    text = (out + err).decode("utf-8", "replace")
    assert [] == [s for s in _slices(KEY) if s in text]
    assert b"Traceback" not in err
    library = [r for r in map(orjson.loads, out.splitlines()) if r["event"] == "library.log"]
    assert len(MALFORMED) - 1 <= len(library)  # the aborted upload may log nothing


@pytest.mark.parametrize(
    "target",
    [
        "/v1/realtime/%2e%2e/%2e%2e/admin",
        "/v1/realtime/%2E%2E/admin",
        "/v1/realtime/..%2fadmin",
        "/v1/realtime/%2f../admin",
        "/v1/realtime/..%5cadmin",
        "/v1/realtime/..\\admin",
        "/v1/realtime/%252e%252e/admin",
        "/v1/realtime/./client_secrets",
        "/v1/realtime//client_secrets",
        "/v1/realtime/calls/x/..",
        "/v1/realtime/client_secrets%00",
    ],
)
async def test_a_path_that_is_not_its_own_normal_form_is_not_forwarded(
    proxy: Any, fake: FakeUpstream, target: str
) -> None:
    """
    Encoded dots, slashes and backslashes, double encoding and dot segments could be
    resolved by the upstream outside the forwarded prefixes: 404, and nothing forwarded.
    """
    head = await _raw_request(
        proxy, f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode()
    )

    assert head.startswith(b"HTTP/1.1 404")
    assert [] == fake.requests


# --- redaction at the edges ---------------------------------------------------------

REDACTOR = Redactor(Policy())
SPLIT_KEY = "sk-proj-SPLITacrossDELTAS0123456789"


def _leaked(text: str, secret: str, n: int = 12) -> list[str]:
    return [s for s in _slices(secret, n) if s in text]


@pytest.mark.parametrize(
    "event_type", ["response.function_call_arguments.delta", "response.mcp_call_arguments.delta"]
)
def test_argument_deltas_are_never_logged_piece_by_piece(event_type: str) -> None:
    """
    With every event logged whole, a password spelled across six argument deltas
    (`{"`, `password`, `":"`, ...) is logged as six lengths; the whole arguments, judged as
    JSON, only at `.done`.
    """
    sink = MemorySink()
    recorder = Recorder(make_logger(sink), REDACTOR, EventPolicy({"default": "full"}))
    pieces = ['{"', "password", '":"', "hunter2-", "opaque-", 'value"}']
    for piece in pieces:
        frame = {"type": event_type, "item_id": "item_1", "call_id": "call_1", "delta": piece}
        take(recorder, "server", orjson.dumps(frame))
    done = {"type": "response.function_call_arguments.done", "call_id": "call_1",
            "arguments": "".join(pieces)}  # fmt: skip
    take(recorder, "server", orjson.dumps(done))

    deltas = [r["payload"]["delta"] for r in sink.records("realtime.event")[:6]]
    assert [{"redacted": "fragment", "chars": len(p)} for p in pieces] == deltas
    assert "hunter2" not in sink.text()
    assert "opaque" not in sink.text()
    assert "password" in sink.records("realtime.event")[-1]["payload"]["arguments"]


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        ("response.output_text.delta", "delta"),
        ("response.output_audio_transcript.delta", "delta"),
        ("conversation.item.input_audio_transcription.delta", "delta"),
        ("response.text.delta", "delta"),
        ("response.audio_transcript.delta", "delta"),
    ],
)
@pytest.mark.parametrize("at", [3, 8, 14, 20, 30])
def test_a_key_split_across_two_deltas_is_redacted_in_both(
    event_type: str, field: str, at: int
) -> None:
    """
    With every event logged whole (the audit preset), a key split over two deltas of one
    stream is logged in neither half: no 12-character slice of it in the log.
    """
    sink = MemorySink()
    recorder = Recorder(make_logger(sink), REDACTOR, EventPolicy({"default": "full"}))
    text = f"my key is {SPLIT_KEY} thanks"
    cut = len("my key is ") + at
    for part in (text[:cut], text[cut:]):
        frame = {"type": event_type, "item_id": "item_1", "content_index": 0, field: part}
        take(recorder, "server", orjson.dumps(frame))

    assert [] == _leaked(sink.text(), SPLIT_KEY, 12)
    assert "thanks" in sink.text()


@pytest.mark.parametrize("offset", range(100, 135, 3))
def test_a_key_across_a_cut_leaves_no_prefix(offset: int) -> None:
    """
    Values are scrubbed, then cut: a key placed across the 128-character cut of a model
    name, an event id or a header leaves no part of itself behind.
    """
    value = ("model " * 30)[:offset] + SPLIT_KEY

    for rendered in (
        REDACTOR.cut(value, 128),
        REDACTOR.headers([("x-note", ("note " * 300)[: offset + 896] + SPLIT_KEY)])["x-note"],
    ):
        assert [] == _leaked(rendered, SPLIT_KEY, 10)


async def test_the_bound_model_never_carries_a_cut_key(
    proxy: Any, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    `model` is bound to every record of a session: a key placed across its cut is not.
    """
    model = "gpt-realtime " + "x " * 52 + SPLIT_KEY
    ws = await proxy.ws_connect(f"/v1/realtime?model={model}")
    await ws.receive(timeout=5)
    await ws.close()

    assert [] == _leaked(sink.text(), SPLIT_KEY, 10)


CREDENTIAL_NAMES = [
    "aws_secret_access_key",
    "secret_key",
    "accessToken",
    "clientSecret",
    "openaiApiKey",
    "refreshToken",
    "authToken",
    "pwd",
    "auth",
    "X-Secret-Key",
    "X-Access-Key",
    "subscription-key",
    "Ocp-Apim-Subscription-Key",
    "session_key",
]
HARMLESS = "plainvalue0123456789x"  # matches no secret pattern


@pytest.mark.parametrize("name", CREDENTIAL_NAMES)
def test_a_credential_is_known_by_its_name_in_json_headers_queries_and_json_text(
    name: str,
) -> None:
    """
    A credential whose value matches no pattern is still redacted by its name: as a
    JSON key, a header, a query parameter, and inside JSON carried as a string
    (function-call arguments and outputs).
    """
    assert is_secret_name(name)
    rendered = [
        orjson.dumps(REDACTOR.scrub({"outer": {name: HARMLESS}})).decode(),
        orjson.dumps(REDACTOR.headers([(name, HARMLESS)])).decode(),
        REDACTOR.url(f"https://x.example/cb?{name}={HARMLESS}&a=1"),
        REDACTOR.kept(orjson.dumps({"args": [{name: HARMLESS}]}).decode()),
    ]
    for text in rendered:
        assert HARMLESS not in text, text


@pytest.mark.parametrize(
    "name",
    [
        "max_output_tokens", "input_tokens", "input_token_details", "author", "keyword",
        "monkey", "key_points", "tokens", "session_id", "item_id",
    ],
)  # fmt: skip
def test_harmless_names_are_not_credentials(name: str) -> None:
    """
    Token counts, ids and words that merely contain a credential word stay readable.
    """
    assert not is_secret_name(name)


async def test_tool_arguments_carrying_a_credential_name_are_redacted(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink
) -> None:
    """
    A function call's output whose JSON names a credential: the value is not logged.
    """
    proxy = await make_proxy()
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)
    output = orjson.dumps({"user": "ada", "accessToken": HARMLESS}).decode()
    item = {"type": "function_call_output", "call_id": "call_1", "output": output}

    await ws.send_str(orjson.dumps({"type": "conversation.item.create", "item": item}).decode())
    await fake.next_frame()
    await ws.close()

    assert HARMLESS not in sink.text()
    assert "ada" in sink.text()


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        ("https://cdn.example.com/a.png?sig=SIGVALUE0001&token=TOKVALUE0001", "SIGVALUE0001"),
        ("https://cdn.example.com/a.png?sig=SIGVALUE0001&token=TOKVALUE0001", "TOKVALUE0001"),
        ("https://user:USERPASS0001@mcp.example.com/mcp", "USERPASS0001"),
        ("https://mcp.example.com/mcp?token=MCPTOKEN0001", "MCPTOKEN0001"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\na=ice-pwd:ICEPWD000001\r\n", "ICEPWD000001"),
        ("see: https://h.example/x?access_token=ACCTOK000001 now", "ACCTOK000001"),
    ],
)
def test_urls_and_sdp_in_unmodelled_data_are_redacted(value: str, secret: str) -> None:
    """
    A URL or an SDP body inside data earshot does not model (unknown events and fields)
    is redacted as the typed fields are.
    """
    frame = orjson.dumps({"type": "x.unknown", "image_url": value, "data": {"sdp": value}})
    sink = MemorySink()
    recorder = Recorder(make_logger(sink), REDACTOR, EventPolicy({"default": "full"}))

    take(recorder, "server", frame)

    assert secret not in sink.text()


BASE64 = base64.b64encode(bytes(range(256)) * 3).decode()


@pytest.mark.parametrize(
    "value",
    [
        "\n".join(BASE64[i : i + 60] for i in range(0, len(BASE64), 60)),
        ".".join(BASE64[i : i + 63] for i in range(0, len(BASE64), 63)),
        [BASE64[i : i + 63] for i in range(0, len(BASE64), 63)],
        [BASE64[i : i + 20] for i in range(0, len(BASE64), 20)],
    ],
)
def test_base64_in_pieces_under_64_characters_is_collapsed(value: Any) -> None:
    """
    Audio or image data wrapped at 60, or cut into a list of 63-character chunks, is
    measured across the separators and the items, and collapsed.
    """
    rendered = orjson.dumps(REDACTOR.scrub({"x": value})).decode()

    assert [] == _leaked(rendered, BASE64, 16)
    assert "[redacted:blob:" in rendered


async def test_pathological_input_is_not_scanned(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A 31 MB `input_text` of 63-character base64 runs joined by dots (63 steps per
    character for the old scan, about 8 s of a stalled loop) reaches the upstream, and
    the scrubber never scans more than `MAX_SCAN` characters of it: the record measures
    it instead. (The work is bounded by construction, so no clock is needed to show it.)
    """
    from proxy import scrub

    scanned: list[int] = []
    text = scrub.Scrubber._text

    def counting(self: Any, value: str, *args: Any, **kw: Any) -> str:
        scanned.append(len(value))
        return text(self, value, *args, **kw)

    monkeypatch.setattr(scrub.Scrubber, "_text", counting)
    proxy = await make_proxy(limits={"max_frame_bytes": 64 * 1024 * 1024})
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime", max_msg_size=0)
    await ws.receive(timeout=5)
    pathological = ".".join([BASE64[:63]] * 480_000)
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": ""}]}
    frame = orjson.dumps({"type": "conversation.item.create", "item": item})
    frame = frame.replace(b'"text":""', b'"text":"' + pathological.encode() + b'"')

    await ws.send_str(frame.decode())
    forwarded = await fake.next_frame(timeout=120)
    await ws.close()

    assert frame == forwarded
    assert max(scanned, default=0) <= scrub.MAX_SCAN
    assert f"[redacted:unscanned:{len(pathological)} chars]" in sink.text()


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("a=rtcp:9 IN IP4 198.51.100.7", "198.51.100.7"),
        ("a=remote-candidates:1 198.51.100.8 5000", "198.51.100.8"),
        ("a=candidate:1 1 udp 2130706431 198.51.100.10", "198.51.100.10"),
        ("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:CRYPTOKEY0001|2^20", "CRYPTOKEY0001"),
        ("A=ice-pwd:ICEPWD000002", "ICEPWD000002"),
        (" a=ice-pwd:ICEPWD000003", "ICEPWD000003"),
        ("a=ice-pwd ICEPWD000004", "ICEPWD000004"),
        ("a=ICE-UFRAG:UFRAG0000005", "UFRAG0000005"),
        ("c=IN IP6 2001:db8::7", "2001:db8::7"),
    ],
)
def test_sdp_is_redacted_by_parsing_its_lines(line: str, secret: str) -> None:
    """
    SDP lines that keep an address or a key, in spellings that dodge exact-text rules.
    """
    assert secret not in REDACTOR.sdp(f"v=0\r\n{line}\r\ns=-\r\n")


# --- slow requests ------------------------------------------------------------------


@pytest.fixture
async def served(upstream: Any) -> Any:
    """earshot served as `earshot` serves it (its runner and admission), tight limits."""
    from proxy.admission import AdmittingRunner
    from proxy.app import make_app
    from proxy.settings import parse

    _fake, server = upstream
    settings = parse(
        {
            "upstream": {"url": str(server.make_url("")).rstrip("/")},
            "limits": {"header_timeout": 0.5, "body_timeout": 0.5, "max_pending_connections": 10},
        },
        environ={},
    )
    sink = MemorySink()
    runner = AdmittingRunner.for_settings(make_app(settings, make_logger(sink)), settings.limits)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner, runner.addresses[0][1], sink
    await runner.cleanup()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return b"" == await asyncio.wait_for(reader.read(), seconds)
    except (TimeoutError, ConnectionError):
        return False


async def test_clients_trickling_headers_are_cut_off(served: Any) -> None:
    """
    Connections that do not finish their request headers within `limits.header_timeout`
    are closed; past `limits.max_pending_connections` at once, new ones are closed at
    once. A normal request still gets through afterwards.
    """
    runner, port, _ = served
    slow = []
    for _ in range(15):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        slow.append((reader, writer))

    closed = await asyncio.gather(*(_closed_within(r, 3) for r, _ in slow))
    for _, writer in slow:
        writer.close()

    assert all(closed)
    assert (5, 10) == (runner.pending.refused, runner.pending.timed_out)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await reader.read()).startswith(b"HTTP/1.1 200")
    writer.close()
    await writer.wait_closed()


async def test_a_client_trickling_its_body_gets_408(served: Any, fake: FakeUpstream) -> None:
    """
    A REST request whose body does not arrive within `limits.body_timeout`: 408, logged,
    and nothing forwarded.
    """
    _, port, sink = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    )

    head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
    writer.close()

    assert head.startswith(b"HTTP/1.1 408")
    assert [] == fake.requests
    assert ["http.request_timeout"] == [r["event"] for r in sink.records()]


def test_the_scrubbing_work_per_frame_is_bounded() -> None:
    """
    Forty 200 KB strings in one unknown event: the scrubber scans at most 1 MiB of them
    for the frame; the rest are logged as their length only.
    """
    chunk = ".".join([BASE64[:63]] * 3200)  # 204,799 characters
    frame = orjson.dumps({"type": "x.many", "parts": [chunk] * 40})
    sink = MemorySink()
    recorder = Recorder(make_logger(sink), REDACTOR, EventPolicy({"default": "full"}))

    take(recorder, "client", frame)

    (record,) = sink.records("realtime.event")
    parts = record["payload"]["parts"]
    unscanned = [p for p in parts if p.startswith("[redacted:unscanned:")]
    assert 35 <= len(unscanned) <= 36
    assert [] == _leaked(sink.text(), BASE64[:63], 16)
