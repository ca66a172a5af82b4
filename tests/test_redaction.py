"""
Redaction tables: each class of data renders as SPEC §3 says — secrets as keyed
fingerprints, audio as bytes and milliseconds, images as media type and size, text per
policy — and headers, queries, subprotocols, SDP and close reasons are cleaned.
"""

from __future__ import annotations

import base64

import orjson
import pytest

import protocol
from proxy.redact import Policy, Redactor
from tests.helpers import take

KEY = b"k" * 32


def _redactor(**kw: object) -> Redactor:
    return Redactor(Policy(fingerprint_key=KEY, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "secret",
    [
        "sk-abcdefghijklmnopqrstuvwx",
        "sk-proj-Zq9xT3BlbkFJ4mN7pR2sV8wY1aB6",
        "sk-svcacct-Zq9xT3BlbkFJ4mN7pR2sV8wY1",
        "sk-admin-Zq9xT3BlbkFJ4mN7pR2sV8wY1aB",
        "ek_68af2b7c1d3e4f5a",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
        "Bearer abcdefghijkl0123",
        "AKIAIOSFODNN7EXAMPLE",
    ],
)
def test_secret_patterns_are_scrubbed_from_text(secret: str) -> None:
    """
    Each key form inside free text becomes a fingerprint, and no part of it remains.
    """
    out = _redactor().scrub_text(f"my key is {secret} ok")

    assert out.startswith("my key is ")
    assert out.endswith(" ok")
    assert "[redacted:secret:" in out
    assert secret[-8:] not in out


def test_configured_patterns_are_scrubbed() -> None:
    """
    Patterns from the config are scrubbed like the built-in ones.
    """
    out = _redactor(patterns=(r"ACME-\d{6}",)).scrub_text("ticket ACME-123456 opened")

    assert "ACME-123456" not in out


def test_fingerprints_are_keyed_and_stable() -> None:
    """
    The same secret gives the same fingerprint under one key, another under another key.
    """
    a, b = _redactor(), Redactor(Policy(fingerprint_key=b"x" * 32))

    assert a.secret("sk-x") == a.secret("sk-x")
    assert a.secret("sk-x") != b.secret("sk-x")
    assert {"redacted", "fp"} == set(a.secret("sk-x"))
    assert 8 == len(a.secret("sk-x")["fp"])


@pytest.mark.parametrize(
    ("session", "direction", "ms"),
    [
        ({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}}, "client", 100.0),
        ({"audio": {"input": {"format": {"type": "audio/pcmu"}}}}, "client", 600.0),
        ({"audio": {"output": {"format": {"type": "audio/pcma"}}}}, "server", 600.0),
        ({"audio": {"output": {"format": {"type": "audio/pcm", "rate": 16000}}}}, "server", 150.0),
    ],
)
def test_audio_duration_follows_the_negotiated_format(
    session: dict[str, object], direction: str, ms: float
) -> None:
    """
    Audio is measured from its base64 length and the session's format, per direction.
    """
    from proxy.log import make_logger
    from proxy.records import EventPolicy, Recorder
    from tests.conftest import MemorySink

    sink = MemorySink()
    recorder = Recorder(make_logger(sink), _redactor(), EventPolicy({"default": "full"}))
    take(recorder, "server", orjson.dumps({"type": "session.updated", "session": session}))
    audio = base64.b64encode(bytes(4800)).decode()
    event = (
        {"type": "input_audio_buffer.append", "audio": audio}
        if direction == "client"
        else {"type": "response.output_audio.delta", "delta": audio}
    )

    take(recorder, direction, orjson.dumps(event))  # type: ignore[arg-type]

    payload = sink.records("realtime.event")[-1]["payload"]
    rendered = payload["audio" if direction == "client" else "delta"]
    assert {"redacted": "audio", "bytes": 4800, "ms": ms} == rendered


def test_audio_hash_is_optional() -> None:
    """
    With `audio_hash`, audio gets a keyed fingerprint too.
    """
    assert "fp" in _redactor(audio_hash=True).audio("AAAA")
    assert "fp" not in _redactor().audio("AAAA")


@pytest.mark.parametrize(
    ("value", "image_host", "expected"),
    [
        (
            "data:image/png;base64,iVBORw0KGgo=",
            False,
            {"redacted": "image", "media_type": "image/png", "bytes": 8},
        ),
        (
            "data:image/jpeg;base64,/9j/4AAQ",
            False,
            {"redacted": "image", "media_type": "image/jpeg", "bytes": 6},
        ),
        (
            "data:evil sk-proj-aaaaaaaaaaaaaaaaaaaaaaa;base64,AAAA",
            False,
            {"redacted": "image", "media_type": "unknown", "bytes": 3},
        ),
        ("https://cdn.example.com/id.png?sig=abc", False, {"redacted": "image", "url": True}),
        (
            "https://cdn.example.com/id.png?sig=abc",
            True,
            {"redacted": "image", "url": True, "host": "cdn.example.com"},
        ),
        ("QUJDRA==", False, {"redacted": "file", "bytes": 4}),
    ],
)
def test_images(value: str, image_host: bool, expected: dict[str, object]) -> None:
    """
    Images and files render as media type and size; a URL as at most its host.
    """
    assert expected == _redactor(image_host=image_host).image(value)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("keep", "Hello Ada"),
        ("length", {"redacted": "text", "chars": 9}),
        ("drop", {"redacted": "text"}),
    ],
)
def test_text_modes(mode: str, expected: object) -> None:
    """
    Text is kept, measured or dropped per the policy of its class.
    """
    redactor = _redactor(text={"transcript": mode})
    event = protocol.decode(
        b'{"type":"response.output_audio_transcript.done","transcript":"Hello Ada"}', "server"
    )

    assert expected == redactor.model(event)["transcript"]  # type: ignore[arg-type]


def test_text_hash_mode_fingerprints() -> None:
    """
    `hash` gives a keyed fingerprint and the length, not the text.
    """
    redactor = _redactor(text={"default": "hash"})
    event = protocol.decode(b'{"type":"response.output_text.done","text":"Hello Ada"}', "server")

    rendered = redactor.model(event)["text"]  # type: ignore[arg-type]

    assert {"redacted": "text", "fp": redactor.fingerprint("Hello Ada"), "chars": 9} == rendered


def test_text_classes_are_independent() -> None:
    """
    A policy for tool text does not touch transcripts.
    """
    redactor = _redactor(text={"tool": "drop"})
    done = protocol.decode(
        b'{"type":"response.function_call_arguments.done","arguments":"{}"}', "server"
    )
    transcript = protocol.decode(
        b'{"type":"response.output_audio_transcript.done","transcript":"hi"}', "server"
    )

    assert {"redacted": "text"} == redactor.model(done)["arguments"]  # type: ignore[arg-type]
    assert "hi" == redactor.model(transcript)["transcript"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value", "leaked"),
    [
        ("Authorization", "Bearer sk-proj-aaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaa"),
        ("api-key", "azurekey0123456789", "azurekey"),
        ("Cookie", "session=s3cr3tcookie", "s3cr3t"),
        ("Set-Cookie", "session=s3cr3tcookie; HttpOnly", "s3cr3t"),
        ("X-Api-Key", "xkey0123456789", "xkey0123"),
        ("OpenAI-Organization-Token", "orgtok0123456789", "orgtok"),
    ],
)
def test_credential_headers_are_fingerprinted(name: str, value: str, leaked: str) -> None:
    """
    Credential headers become fingerprints.
    """
    out = _redactor().headers([(name, value), ("User-Agent", "OpenAI/Python 3.52.0")])

    assert "secret" == out[name.lower()]["redacted"]
    assert "OpenAI/Python 3.52.0" == out["user-agent"]
    assert leaked not in orjson.dumps(out).decode()


def test_subprotocol_key_element_is_fingerprinted() -> None:
    """
    Only the `openai-insecure-api-key.` element of the subprotocol list is redacted.
    """
    out = _redactor().subprotocols(
        ["realtime", "openai-insecure-api-key.ek_abcdef012345", "openai-beta.realtime-v1"]
    )

    assert out.startswith("realtime, openai-insecure-api-key.[redacted:secret:")
    assert out.endswith(", openai-beta.realtime-v1")
    assert "abcdef012345" not in out


@pytest.mark.parametrize(
    ("query", "leaked"),
    [
        ("api-key=azure0123&api-version=2025-04-01", "azure0123"),
        ("Authorization=Bearer%20tok0123456", "tok0123456"),
        ("token=tok0123456&model=gpt-realtime", "tok0123456"),
        ("key=k0123456789", "k0123456789"),
    ],
)
def test_query_credentials_are_redacted(query: str, leaked: str) -> None:
    """
    Credentials in a URL's query are replaced; other parameters are kept.
    """
    out = _redactor().url(f"/openai/realtime?{query}")

    assert leaked not in out
    assert out.startswith("/openai/realtime?")


def test_url_userinfo_is_removed() -> None:
    """
    Userinfo in an MCP server URL never reaches the log.
    """
    out = _redactor().url("https://alice:hunter2@mcp.example.com:8443/sse?x=1")

    assert "hunter2" not in out
    assert "alice" not in out
    assert out.endswith("@mcp.example.com:8443/sse?x=1")


def test_sdp_is_redacted() -> None:
    """
    ICE credentials and candidate addresses are removed; the rest of the SDP stays.
    """
    sdp = (
        "v=0\r\no=- 46117 2 IN IP4 192.0.2.10\r\nc=IN IP4 192.0.2.10\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=ice-ufrag:UFRAGvalue\r\na=ice-pwd:PASSWORDvalue0123456789\r\n"
        "a=candidate:1 1 udp 2130706431 198.51.100.7 50000 typ srflx raddr 10.0.0.5 rport 50000\r\n"
        "a=rtpmap:111 opus/48000/2\r\n"
    )

    out = _redactor().sdp(sdp)

    for secret in ("UFRAGvalue", "PASSWORDvalue", "192.0.2.10", "198.51.100.7", "10.0.0.5"):
        assert secret not in out
    assert "a=rtpmap:111 opus/48000/2" in out
    assert "m=audio 9 UDP/TLS/RTP/SAVPF 111" in out


@pytest.mark.parametrize(
    "reason",
    [
        b"invalid key sk-proj-aaaaaaaaaaaaaaaaaaaaaaaa",
        "token Bearer abcdefghijklmnop expired",
        b"\xff\xfe bad utf8",
    ],
)
def test_close_reasons_are_scrubbed_and_bounded(reason: str | bytes) -> None:
    """
    Close reasons are decoded safely, scrubbed of secrets and at most 123 characters.
    """
    out = _redactor().reason(reason)

    assert "aaaaaaaaaaaa" not in out
    assert "abcdefghijklmnop" not in out
    assert len(out) <= 123


def test_unknown_fields_follow_key_name_rules() -> None:
    """
    Undeclared keys named like credentials are fingerprinted; usage counters are not.
    """
    out = _redactor().scrub(
        {
            "client_secret": {"value": "x"},
            "access_token": "t",
            "input_tokens": 12,
            "headers": {"a": "b"},
            "ok": "fine",
        }
    )

    assert (
        "secret"
        == out["client_secret"]["redacted"]
        == out["access_token"]["redacted"]
        == out["headers"]["redacted"]
    )
    assert (12, "fine") == (out["input_tokens"], out["ok"])


def test_long_base64_runs_are_collapsed() -> None:
    """
    A long base64 run in an unknown field becomes a blob marker with its decoded size.
    """
    blob = base64.b64encode(bytes(300)).decode()

    out = _redactor().scrub({"data": blob, "inline": f"prefix {blob} suffix"})

    assert "[redacted:blob:300]" == out["data"]
    assert "prefix [redacted:blob:300] suffix" == out["inline"]


def test_deep_unknown_json_is_cut_off() -> None:
    """
    Unknown JSON nested deeper than the scrubber's limit is replaced, not recursed into.
    """
    deep: object = "x"
    for _ in range(500):
        deep = [deep]

    out = _redactor().scrub({"a": deep})

    assert "deep" in orjson.dumps(out).decode()
