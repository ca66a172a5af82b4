"""
The generative leak test (SPEC §1.4): secret x encoding x place x policy, through the proxy.

A secret (five key shapes, an opaque value under a credential's name, and — where the
schema vouches for nothing — a bare opaque value) is written in a carrier, encoded
(raw, percent-encoded once and twice, base64, `\\u`-escaped text, escaped on the JSON
wire, JSON inside a string at depth 1 to 3, a Python repr, split over 2 to 6 deltas),
and put in a place (every field class of the protocol model, unknown fields and events,
headers, query, subprotocol, REST bodies and error bodies, SDP, SIP URIs, close
reasons), then sent through a real proxy under each policy (the default, every event in
full, and the shipped presets). No 12-character slice of any secret, of its base64, or of
its encoded form may appear in the log, on stdout or stderr, or in `/metrics`.

Every combination of the four is run (none sampled): `COMBINATIONS` counts them. The
values are drawn afresh from hypothesis for each run of `test_the_scrubber_finds_every_
variant`, the in-process property over the same product.
"""

from __future__ import annotations

import base64
import json
import random
import string
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.log import make_logger
from proxy.records import EventPolicy, Recorder
from proxy.redact import Policy, Redactor
from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream
from tests.helpers import take

ALNUM = string.ascii_letters + string.digits


def _token(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- secrets: (name, make(rng) -> secret, carrier(secret) -> text) ----------------------


def _jwt(rng: random.Random) -> str:
    head = _b64url(b'{"alg":"HS256","typ":"JWT"}')
    body = _b64url(orjson.dumps({"sub": _token(rng, 12), "exp": rng.randrange(10**9)}))
    return f"{head}.{body}.{_b64url(rng.randbytes(32))}"


SHAPES: dict[str, Callable[[random.Random], str]] = {
    "sk-proj": lambda r: "sk-proj-" + _token(r, 40),
    "sk": lambda r: "sk-" + _token(r, 48),
    "ek": lambda r: "ek_" + _token(r, 32),
    "jwt": _jwt,
    "aws": lambda r: "AKIA" + _token(r, 16, string.ascii_uppercase + string.digits),
    "named": lambda r: _token(r, 40),
    "bare": lambda r: _token(r, 40),
}


def carrier(shape: str, secret: str) -> str:
    """The text a secret travels in: a key shape bare in a sentence, an opaque value
    under a credential's name, or (`bare`) alone."""
    if shape == "named":
        return f"client_secret={secret}"
    if shape == "bare":
        return secret
    return f"my key is {secret} thanks"


# --- encodings ------------------------------------------------------------------------


def _escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


ENCODINGS: dict[str, Callable[[str], str]] = {
    "raw": lambda c: c,
    "percent": lambda c: quote(c, safe=""),
    "percent2": lambda c: quote(quote(c, safe=""), safe=""),
    "base64": lambda c: base64.b64encode(c.encode()).decode(),
    "escaped": _escaped,
    "wire": lambda c: c,  # escaped on the JSON wire: see `Case.frame`
    "json1": lambda c: json.dumps({"note": c}),
    "json2": lambda c: json.dumps({"data": json.dumps({"note": c})}),
    "json3": lambda c: json.dumps({"d": json.dumps({"data": json.dumps({"note": c})})}),
    "repr": lambda c: repr({"note": c, "n": 1}),
    **{f"split{n}": (lambda c: c) for n in range(2, 7)},
}


def forbidden(secret: str, encoded: str, text: str) -> Iterator[str]:
    """Every 12-character slice that would show the secret: of the secret, of its base64
    (each alignment), and of its encoded form where the encoding keeps it together."""
    views = [secret]
    for shift in range(3):
        views.append(base64.b64encode(("x" * shift + secret).encode()).decode()[4:-4])
    views.append(_escaped(secret))
    start = text.find(secret)
    if start >= 0:
        b64 = base64.b64encode(text.encode()).decode()
        views.append(b64[4 * ((start + 2) // 3) : 4 * ((start + len(secret)) // 3)])
    for view in views:
        for i in range(len(view) - 11):
            yield view[i : i + 12]


# --- places ---------------------------------------------------------------------------
# Each place says how a value reaches the proxy: in a client or server frame, in the
# handshake, or in a REST exchange. `kept` places are kept text: the schema vouches for
# them, so a bare opaque value there is not a secret by any rule (SPEC §3).

WS_PLACES: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "text": (
        "client",
        lambda v: {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": v}],
            },
        },
    ),
    "instructions": (
        "client",
        lambda v: {"type": "session.update", "session": {"type": "realtime", "instructions": v}},
    ),
    "tool_output": (
        "client",
        lambda v: {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": v},
        },
    ),
    "unknown_field": ("client", lambda v: {"type": "input_audio_buffer.commit", "x_note": v}),
    "unknown_event": ("client", lambda v: {"type": "acme.custom_event", "data": {"note": v}}),
    "json_schema": (
        "client",
        lambda v: {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "tools": [
                    {
                        "type": "function",
                        "name": "f",
                        "parameters": {"type": "object", "description": v},
                    }
                ],
            },
        },
    ),
    "metadata": (
        "client",
        lambda v: {"type": "response.create", "response": {"metadata": {"note": v}}},
    ),
    "audio": ("client", lambda v: {"type": "input_audio_buffer.append", "audio": "!!" + v}),
    "error_message": (
        "server",
        lambda v: {"type": "error", "error": {"type": "invalid_request_error", "message": v}},
    ),
    "transcript": (
        "server",
        lambda v: {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "item_1",
            "content_index": 0,
            "transcript": v,
        },
    ),
    "function_arguments": (
        "server",
        lambda v: {
            "type": "response.function_call_arguments.done",
            "item_id": "item_1",
            "call_id": "call_1",
            "arguments": v,
        },
    ),
}
KEPT = {
    "text",
    "instructions",
    "tool_output",
    "error_message",
    "transcript",
    "function_arguments",
    "sip_uri",
    "sdp",
}
# Streams: each piece is one delta; the whole arguments follow at `.done`.
DELTA_PLACES: dict[str, Callable[[str], dict[str, Any]]] = {
    "text_delta": lambda v: {
        "type": "response.output_text.delta",
        "item_id": "item_1",
        "content_index": 0,
        "output_index": 0,
        "response_id": "resp_1",
        "delta": v,
    },
    "transcript_delta": lambda v: {
        "type": "response.output_audio_transcript.delta",
        "item_id": "item_1",
        "content_index": 0,
        "output_index": 0,
        "response_id": "resp_1",
        "delta": v,
    },
    "arguments_delta": lambda v: {
        "type": "response.function_call_arguments.delta",
        "item_id": "item_1",
        "call_id": "call_1",
        "output_index": 0,
        "response_id": "resp_1",
        "delta": v,
    },
}
KEPT |= {"text_delta", "transcript_delta", "arguments_delta"}
HANDSHAKE_PLACES = (
    "header",
    "allowed_header",
    "query",
    "model_query",
    "subprotocol",
    "close_reason",
)
REST_PLACES = ("rest_body", "rest_error_body", "rest_response_header", "sdp", "sip_uri")

POLICIES: dict[str, dict[str, Any]] = {
    "default": {},
    "full": {"log": {"events": {"default": "full"}}},
    **{
        name: {
            k: v
            for k, v in yaml.safe_load(
                (
                    __import__("pathlib").Path(__file__).parent.parent / "config" / f"{name}.yaml"
                ).read_text()
            ).items()
            if k in ("log", "redaction")
        }
        for name in ("audit", "strict-pii")
    },
}
for _preset in POLICIES.values():
    _preset.get("log", {}).pop("output", None)


def applicable(shape: str, encoding: str, place: str) -> bool:
    """Whether a combination is one the contract covers."""
    if shape == "bare" and place in KEPT:
        return False  # kept text: an unnamed random word is the user's to say
    if encoding.startswith("split"):
        return place in DELTA_PLACES
    if encoding == "wire":
        return (
            place in WS_PLACES or place in DELTA_PLACES or place in ("rest_body", "rest_error_body")
        )
    return True


def cases(seed: int) -> list[tuple[str, str, str, str, str]]:
    """(shape, encoding, place, secret, value) for every applicable combination."""
    rng = random.Random(seed)
    out = []
    places = [*WS_PLACES, *DELTA_PLACES, *HANDSHAKE_PLACES, *REST_PLACES]
    for place in places:
        for shape, make in SHAPES.items():
            for encoding, encode in ENCODINGS.items():
                if applicable(shape, encoding, place):
                    secret = make(rng)
                    out.append((shape, encoding, place, secret, encode(carrier(shape, secret))))
    return out


COMBINATIONS = len(cases(0)) * len(POLICIES)


def _wire(frame: dict[str, Any], value: str, encoding: str) -> bytes:
    data = orjson.dumps(frame)
    if encoding == "wire":
        data = data.replace(orjson.dumps(value)[1:-1], _escaped(value).encode(), 1)
    return data


def _pieces(value: str, encoding: str) -> list[str]:
    if not encoding.startswith("split"):
        return [value]
    n = int(encoding[5:])
    cuts = sorted(random.Random(value).sample(range(1, len(value)), n - 1))
    return [value[a:b] for a, b in zip([0, *cuts], [*cuts, len(value)], strict=True)]


# --- through the proxy ----------------------------------------------------------------


async def _run_ws(
    proxy: Any, fake: FakeUpstream, group: list[tuple[str, str, str, str, str]]
) -> None:
    fake.scripted = False
    ws = await proxy.ws_connect("/v1/realtime?model=gpt-realtime")
    await ws.receive(timeout=5)  # session.created
    for _, encoding, place, _, value in group:
        if place in DELTA_PLACES:
            for piece in _pieces(value, encoding):
                await fake.send(_wire(DELTA_PLACES[place](piece), piece, encoding))
                await ws.receive(timeout=5)
            done = {
                "type": "response.function_call_arguments.done",
                "call_id": "call_1",
                "arguments": value,
            }
            await fake.send(orjson.dumps(done))
            await ws.receive(timeout=5)
            continue
        direction, make = WS_PLACES[place]
        frame = _wire(make(value), value, encoding)
        if direction == "client":
            await ws.send_frame(frame, aiohttp.WSMsgType.TEXT)
            await fake.next_frame()
        else:
            await fake.send(frame)
            await ws.receive(timeout=5)
    await ws.close()


async def _run_handshake(proxy: Any, fake: FakeUpstream, place: str, value: str) -> None:
    path, headers, protocols = "/v1/realtime?model=gpt-realtime", {}, ()
    if place == "header":
        headers = {"X-Acme-Note": value}
    elif place == "allowed_header":
        headers = {"User-Agent": value}
    elif place == "query":
        path += "&note=" + quote(value, safe="")
    elif place == "model_query":
        path = "/v1/realtime?model=" + quote(value, safe="")
    elif place == "subprotocol":
        protocols = ("realtime", "openai-insecure-api-key." + quote(value, safe=""))
    try:
        ws = await proxy.ws_connect(path, headers=headers, protocols=protocols)
    except (aiohttp.WSServerHandshakeError, ValueError):
        return
    await ws.receive(timeout=5)
    if place == "close_reason":
        await ws.close(code=4000, message=value.encode()[:123])
    else:
        await ws.close()


async def _run_rest(proxy: Any, fake: FakeUpstream, place: str, value: str) -> None:
    if place == "rest_body":
        body = orjson.dumps(
            {"session": {"type": "realtime", "model": "gpt-realtime"}, "note": value}
        )
        await proxy.post(
            "/v1/realtime/client_secrets", data=body, headers={"Content-Type": "application/json"}
        )
    elif place == "rest_error_body":
        fake.answers.append(
            (
                400,
                [("Content-Type", "application/json")],
                orjson.dumps({"error": {"message": value, "type": "invalid_request_error"}}),
            )
        )
        await proxy.post(
            "/v1/realtime/client_secrets", data=b"{}", headers={"Content-Type": "application/json"}
        )
    elif place == "rest_response_header":
        fake.answers.append(
            (
                200,
                [
                    ("X-Acme-Note", value),
                    ("Location", "https://cb.example/x?note=" + quote(value, safe="")),
                ],
                b"{}",
            )
        )
        await proxy.post(
            "/v1/realtime/client_secrets", data=b"{}", headers={"Content-Type": "application/json"}
        )
    elif place == "sdp":
        sdp = f"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns={value}\r\nu=https://bob:{value}@sdp.example/\r\nt=0 0\r\n"
        await proxy.post(
            "/v1/realtime/calls", data=sdp.encode(), headers={"Content-Type": "application/sdp"}
        )
    elif place == "sip_uri":
        body = orjson.dumps(
            {"type": "refer", "target_uri": f"sip:+15551234@sip.example.com;note={value}"}
        )
        await proxy.post(
            "/v1/realtime/calls/rtc_1/refer",
            data=body,
            headers={"Content-Type": "application/json"},
        )


def _leaks(outputs: str, group: list[tuple[str, str, str, str, str]]) -> list[str]:
    slices: dict[str, str] = {}
    for shape, encoding, place, secret, value in group:
        for s in forbidden(secret, value, carrier(shape, secret)):
            slices.setdefault(s, f"{shape} x {encoding} x {place}")
    found = set()
    for i in range(len(outputs) - 11):
        case = slices.get(outputs[i : i + 12])
        if case is not None:
            found.add(case)
    return sorted(found)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("group", ["ws", "handshake", "rest"])
async def test_no_secret_reaches_the_log_stdout_stderr_or_metrics(
    make_proxy: ProxyFactory,
    fake: FakeUpstream,
    sink: MemorySink,
    capfd: Any,
    policy: str,
    group: str,
) -> None:
    """
    Every applicable secret x encoding x place, under one policy, through a real proxy:
    no slice of any secret in any output earshot has.
    """
    proxy = await make_proxy(**POLICIES[policy])
    places = {
        "ws": (*WS_PLACES, *DELTA_PLACES),
        "handshake": HANDSHAKE_PLACES,
        "rest": REST_PLACES,
    }[group]
    todo = [c for c in cases(zlib.crc32(f"{policy}{group}".encode())) if c[2] in places]
    if group == "ws":
        await _run_ws(proxy, fake, todo)
    for _, _, place, _, value in todo:
        if group == "handshake":
            await _run_handshake(proxy, fake, place, value)
        elif group == "rest":
            await _run_rest(proxy, fake, place, value)
    metrics = await (await proxy.get("/metrics")).text()
    out, err = capfd.readouterr()

    assert len(todo) > 100
    assert len(sink.lines) >= len(todo) // 2
    assert [] == _leaks(sink.text() + metrics + out + err, todo)


# --- the same product in-process, values from hypothesis ---------------------------------

REDACTORS = {
    "keep": Redactor(Policy()),
    "hash": Redactor(Policy(text={"default": "hash"})),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    shape=st.sampled_from(sorted(SHAPES)),
    encoding=st.sampled_from(sorted(ENCODINGS)),
    place=st.sampled_from(sorted([*WS_PLACES, *DELTA_PLACES])),
    text_mode=st.sampled_from(sorted(REDACTORS)),
    full=st.booleans(),
)
def test_the_scrubber_finds_every_variant(
    seed: int, shape: str, encoding: str, place: str, text_mode: str, full: bool
) -> None:
    """
    The frame places of the product, through the recorder alone, with fresh values:
    nothing of the secret in any record.
    """
    if not applicable(shape, encoding, place):
        return
    secret = SHAPES[shape](random.Random(seed))
    value = ENCODINGS[encoding](carrier(shape, secret))
    sink = MemorySink()
    events = {"default": "full"} if full else {"default": "full", "*.delta": "summary"}
    recorder = Recorder(make_logger(sink), REDACTORS[text_mode], EventPolicy(events))
    if place in DELTA_PLACES:
        for piece in _pieces(value, encoding):
            take(recorder, "server", _wire(DELTA_PLACES[place](piece), piece, encoding))
    else:
        direction, make = WS_PLACES[place]
        take(recorder, direction, _wire(make(value), value, encoding))  # type: ignore[arg-type]
    recorder.close()

    assert [] == _leaks(sink.text(), [(shape, encoding, place, secret, value)])
