"""
The scrubber's classes, one instance each (the generative test in `test_leaks.py` tries
their variants), the credential-name rule, the allow-lists, and what the scrubber does to
real traffic: the recorded sessions render unchanged but for the argument deltas, and the
token detector's false positives on them (none) and its recall on random keys.
"""

from __future__ import annotations

import base64
import json
import random
import string
from typing import Any

import orjson
import pytest

from proxy.credentials import entropy_threshold, is_high_entropy, is_secret_name
from proxy.log import make_logger
from proxy.records import EventPolicy, Recorder
from proxy.redact import Policy, Redactor
from tests.conftest import MemorySink
from tests.helpers import recorded_sessions, take

R = Redactor(Policy())
OPAQUE = "Zq8vR2mN5xT1wY7bK3cF9hJ4dL6sP0gA"  # no key pattern: found by name or entropy
KEY = "sk-proj-Abc123Def456Ghi789Jkl0MnoPqr"
EK = "ek_68b2c1d0e4f5a6b7c8d9e0f1a2b3c4d5"


def _shown(rendered: Any, *secrets: str) -> list[str]:
    text = rendered if isinstance(rendered, str) else orjson.dumps(rendered).decode()
    return [s for s in secrets for i in range(len(s) - 11) if s[i : i + 12] in text]


@pytest.mark.parametrize(
    ("case", "render"),
    [
        ("JSON text holding a JSON string (MCP content[].text)", lambda: R.scrub_text(json.dumps({"content": [{"type": "text", "text": json.dumps({"password": OPAQUE})}]}))),
        ("an unknown field whose value is JSON text", lambda: R.scrub({"x_debug": json.dumps({"api_key": OPAQUE})})),
        ("a Python repr in a tool output", lambda: R.scrub_text(repr({"password": OPAQUE, "user": "bob"}))),
        ("aws_secret_access_key in a tool output's JSON text", lambda: R.scrub_text(json.dumps({"aws_secret_access_key": OPAQUE, "region": "eu-west-1"}))),
        ("a plural container (secrets: [...])", lambda: R.scrub({"secrets": [OPAQUE]})),
        ("passwords", lambda: R.scrub({"passwords": {"db": OPAQUE}})),
        ("apikeys", lambda: R.scrub({"apikeys": [OPAQUE]})),
        ("db_pass", lambda: R.scrub({"db_pass": OPAQUE})),
        ("X-Functions-Key header", lambda: R.headers([("X-Functions-Key", OPAQUE)])),
        ("x-functions-key header", lambda: R.headers([("x-functions-key", OPAQUE)])),
        ("query pass, code, jwt, bearer, ephemeral_key", lambda: R.request_url(f"/v1/realtime?model=m&pass={OPAQUE}&code={OPAQUE}1&jwt={OPAQUE}2&bearer={OPAQUE}3&ephemeral_key={OPAQUE}4")),
        ("a subprotocol prefix in another case", lambda: R.subprotocols(["realtime", f"OpenAI-Insecure-API-Key.{EK}"])),
        ("a percent-encoded key prefix", lambda: R.scrub_text("key: sk%2Dproj%2DAbc123Def456Ghi789Jkl0MnoPqr")),
        ("the base64 of an ek_ key", lambda: R.scrub_text("here: " + base64.b64encode(EK.encode()).decode())),
        ("Authorization: Basic in free text", lambda: R.scrub_text("send Authorization: Basic " + base64.b64encode(f"bob:{OPAQUE}".encode()).decode())),
        ("client_secret=… in free text", lambda: R.scrub_text(f"retry with client_secret={OPAQUE} please")),
        ("userinfo in an SDP u= line", lambda: R.sdp(f"v=0\r\nu=https://bob:{OPAQUE}@conf.example/\r\ns=-")),
        ("a token parameter in a SIP URI", lambda: R.scrub_text(f"sip:+15551234@sip.example.com;transport=tls;token={OPAQUE}")),
        ("a token in a Location header", lambda: R.headers([("Location", f"https://cb.example/done?access_token={OPAQUE}")])),
        ("a bare random token in an unknown field", lambda: R.scrub({"x_note": OPAQUE})),
        ("a key in a close reason", lambda: R.reason(f"bye {KEY}")),
        ("JSON-escaped key in unknown JSON text", lambda: R.scrub({"x": '{"k": "\\u0073k-proj-Abc123Def456Ghi789Jkl0MnoPqr"}'})),
    ],
)  # fmt: skip
def test_each_class_of_leak_is_closed(case: str, render: Any) -> None:
    """
    One instance of each class the last probe found: nothing of the secret is logged.
    """
    assert [] == _shown(render(), OPAQUE, KEY, EK, base64.b64encode(OPAQUE.encode()).decode())


def test_audio_is_redacted_whatever_it_holds() -> None:
    """
    The schema says audio: a few non-base64 characters in front, or text, change nothing.
    """
    sink = MemorySink()
    recorder = Recorder(make_logger(sink), R, EventPolicy({"default": "full"}))
    value = "!!" + base64.b64encode(f"my key is {KEY}".encode()).decode() + " and " + OPAQUE
    take(recorder, "client", orjson.dumps({"type": "input_audio_buffer.append", "audio": value}))

    (record,) = sink.records("realtime.event")
    assert "audio" == record["payload"]["audio"]["redacted"]
    assert [] == _shown(sink.text(), OPAQUE, KEY)


@pytest.mark.parametrize(
    "name",
    [
        "secrets", "passwords", "apikeys", "api_keys", "db_pass", "dbPassword", "x-functions-key",
        "X-Functions-Key", "jwt", "bearer", "ephemeral_key", "OpenAI-Insecure-API-Key",
        "clientSecrets", "access_tokens", "refreshToken", "AWS_SECRET_ACCESS_KEY", "APIKey",
        "mySecretValue", "sessionjwt", "private-key", "ssh_private_keys", "auth", "cookies",
    ],
)  # fmt: skip
def test_credential_names_are_known_by_rule(name: str) -> None:
    """
    Plurals, containers, run-together words, any casing and any separator.
    """
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "input_tokens", "cached_tokens", "total_tokens", "max_output_tokens", "text_tokens",
        "input_token_details", "output_token_details", "prompt_cache_key", "idempotency_key",
        "author", "keyword", "key_points", "bypass", "compass", "code", "type", "model",
        "secretary", "session_id", "item_id", "token_count",
    ],
)  # fmt: skip
def test_names_that_only_look_like_credentials_stay_readable(name: str) -> None:
    """
    Token counts, cache and idempotency keys, and words that contain a credential word.
    """
    assert not is_secret_name(name)


def test_parameter_words_are_credentials_only_as_parameters() -> None:
    """
    `code` is an OAuth code in a query and an error code in JSON.
    """
    assert is_secret_name("code", parameter=True)
    assert not is_secret_name("code")


def test_headers_and_query_values_are_logged_only_when_allowed() -> None:
    """
    A header or parameter not on the allow-list is a fingerprint; one on it is kept.
    """
    headers = R.headers(
        [("X-Acme-Trace", "abc"), ("User-Agent", "acme/1.0"), ("Content-Type", "application/json")]
    )
    assert {"redacted": "value", "fp": R.fingerprint("abc")} == headers["x-acme-trace"]
    assert "acme/1.0" == headers["user-agent"]
    assert "/v1/realtime?model=gpt-realtime&note=[redacted:value:" + R.fingerprint(
        "hi"
    ) + "]" == R.request_url("/v1/realtime?model=gpt-realtime&note=hi")

    wider = Redactor(Policy(allow_headers=("x-acme-*",), allow_query=("note",)))
    assert "abc" == wider.headers([("X-Acme-Trace", "abc")])["x-acme-trace"]
    assert "/v1/realtime?note=hi" == wider.request_url("/v1/realtime?note=hi")


def _strings(value: Any, path: str = "") -> dict[str, str]:
    if isinstance(value, str):
        return {path: value}
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(_strings(v, f"{path}.{k}"))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(_strings(v, f"{path}[{i}]"))
    return out


def test_recorded_sessions_log_their_text_ids_and_models_unchanged() -> None:
    """
    Every string of every recorded event (text, transcripts, ids, models, tool arguments
    at `.done`) is logged as it came, under the full policy: real traffic holds no secret,
    and the detectors find none. Only argument deltas differ: they are logged as lengths.
    """
    changed, compared = [], 0
    for name, frames in recorded_sessions():
        sink = MemorySink()
        recorder = Recorder(make_logger(sink), R, EventPolicy({"default": "full"}))
        for direction, data in frames:
            take(recorder, direction, data)
        events = [orjson.loads(d) for _, d in frames]
        records = sink.records("realtime.event")
        assert [] == sink.records("realtime.undecodable"), name
        assert len(events) == len(records), name
        for event, record in zip(events, records, strict=True):
            logged = _strings(record["payload"])
            for path, value in _strings(event).items():
                if path in logged and not event["type"].endswith("arguments.delta"):
                    compared += 1
                    if logged[path] != value:
                        changed.append((name, event["type"], path))
    assert compared > 1000
    assert [] == changed


def test_the_token_detector_takes_no_real_id_and_almost_every_random_key() -> None:
    """
    False positives on the recordings' strings: 0 of every run of 20+ letters and
    digits. Recall on random keys of 24 to 63 characters (10,000 of them): at least
    99.9%. Below 24 characters the threshold is out of reach by design (21-character ids).
    """
    runs = []
    for _, frames in recorded_sessions():
        for _, data in frames:
            event = orjson.loads(data)
            for value in _strings(event).values():
                if event.get("type", "").endswith(("audio.delta", "append")):
                    continue  # audio: redacted by the schema, never judged as text
                runs += [w for w in __import__("re").findall(r"[A-Za-z0-9]{20,}", value)]
    flagged = [r for r in runs if is_high_entropy(r)]
    assert len(runs) > 500
    assert [] == flagged

    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits
    keys = [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(24, 64))) for _ in range(10_000)
    ]
    missed = [k for k in keys if not is_high_entropy(k)]
    assert len(missed) <= 10
    assert entropy_threshold(21) > __import__("math").log2(21)
