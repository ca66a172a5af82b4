"""
Canary properties: plant random canaries in every sensitive field of every event type
(secrets, audio, images, credentials in URLs, secret patterns inside text), in unknown
fields and in unknown events; render the records; no canary, nor any 24-character slice
of its base64 form, may appear in any line.
"""

from __future__ import annotations

import base64
import string
import typing
from typing import Any

import attrs
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from protocol import types as pt
from proxy.log import make_logger
from proxy.records import EventPolicy, Recorder
from proxy.redact import Policy, Redactor
from proxy.session_info import SessionInfo
from tests.conftest import MemorySink
from tests.helpers import corpus, take

CORPUS = corpus()
REDACTOR = Redactor(Policy())
TOKENS = st.text(alphabet=string.ascii_letters + string.digits, min_size=24, max_size=40)
# Canaries that no lowercase event type can contain: a test that logs a type on purpose
# can never find a canary in it by chance.
UPPER_TOKENS = st.text(alphabet=string.ascii_uppercase + string.digits, min_size=24, max_size=40)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _unwrap(tp: Any) -> Any:
    """A field's declared type without Opt/None; lists and dicts to their value type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        args = [a for a in typing.get_args(tp) if a is not pt.Unset and a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else tp
    return tp


class Planter:
    """Replaces every sensitive value of a JSON event with a canary, guided by its model."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.canaries: list[str] = []

    def token(self) -> str:
        value = self.draw(TOKENS)
        self.canaries.append(value)
        return value

    def value(self, tp: Any, current: Any) -> Any:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if current is None:
            return None
        if origin is list and isinstance(current, list):
            return [self.value(typing.get_args(tp)[0], v) for v in current]
        if origin is dict and isinstance(current, dict):
            return {k: self.value(typing.get_args(tp)[1], v) for k, v in current.items()}
        if tp is pt.Secret:
            return self.token()
        if tp is pt.Audio:
            audio = base64.b64encode(self.token().encode() * 4).decode()
            self.canaries.append(audio)
            return audio
        if tp is pt.Image:
            data = base64.b64encode(self.token().encode() * 4).decode()
            self.canaries.append(data)
            return f"data:image/png;base64,{data}"
        if tp is pt.Url:
            return f"https://user:{self.token()}@mcp.example.com/x?token={self.token()}"
        if tp in pt.TEXT_CLASSES:
            return f"note: sk-proj-{self.token()} and Bearer {self.token()}"
        if tp is pt.Json:
            return {"authorization": self.token(), "nested": [{"api_key": self.token()}]}
        if isinstance(current, dict):
            return self.object(current, tp)
        return current

    def object(self, obj: dict[str, Any], tp: Any) -> dict[str, Any]:
        decoded_cls = self.cls_for(obj, tp)
        out = dict(obj)
        if decoded_cls is not None:
            hints = typing.get_type_hints(decoded_cls)
            for a in attrs.fields(decoded_cls):
                if a.name in out and a.name != "extra":
                    out[a.name] = self.value(hints[a.name], out[a.name])
        out["x_unknown"] = {
            "password": self.token(),
            "blob": base64.b64encode(self.token().encode() * 3).decode(),
        }
        return out

    @staticmethod
    def cls_for(obj: dict[str, Any], tp: Any) -> type | None:
        if attrs.has(tp):
            return tp  # type: ignore[no-any-return]
        members = [m for m in typing.get_args(tp) if attrs.has(m)]
        for m in members:
            if getattr(m, "TYPE", None) == obj.get("type"):
                return m
        return members[-1] if members else None


def _leaks(text: str, canaries: list[str]) -> list[str]:
    found = []
    for canary in canaries:
        forms = [canary, base64.b64encode(canary.encode()).decode()]
        if canary in text:
            found.append(canary)
            continue
        for form in forms:
            if any(form[i : i + 24] in text for i in range(0, max(1, len(form) - 23))):
                found.append(canary)
                break
    return found


@st.composite
def planted_events(draw: st.DrawFn) -> tuple[str, str, bytes, list[str]]:
    proto, direction, frame = draw(st.sampled_from(CORPUS))
    obj = orjson.loads(frame)
    classes = {c.TYPE: c for c in protocol.event_classes(proto, direction)}  # type: ignore[arg-type]
    planter = Planter(draw)
    planted = planter.object(obj, classes[obj["type"]])
    return proto, direction, orjson.dumps(planted), planter.canaries


def _render(
    proto: str, direction: str, frame: bytes, mode: str, text: str = "keep"
) -> tuple[MemorySink, Recorder]:
    sink = MemorySink()
    recorder = Recorder(
        make_logger(sink),
        Redactor(Policy(text={"default": text})),  # type: ignore[dict-item]
        EventPolicy({"default": mode}),
        info=SessionInfo(event_set=proto),  # type: ignore[arg-type]
    )
    take(recorder, direction, frame)  # type: ignore[arg-type]
    recorder.close()
    return sink, recorder


@SETTINGS
@given(
    event=planted_events(),
    mode=st.sampled_from(["full", "summary"]),
    text=st.sampled_from(["keep", "hash", "length", "drop"]),
)
def test_no_canary_reaches_a_log_line(
    event: tuple[str, str, bytes, list[str]], mode: str, text: str
) -> None:
    """
    Whatever event carries canaries in its sensitive and unknown fields, none is logged.
    """
    proto, direction, frame, canaries = event

    sink, _ = _render(proto, direction, frame, mode, text)

    assert sink.lines
    assert [] == _leaks(sink.text(), canaries)


@SETTINGS
@given(event=planted_events())
def test_planted_events_still_decode(event: tuple[str, str, bytes, list[str]]) -> None:
    """
    Planting canaries keeps events decodable, so the property above tests real records.
    """
    proto, direction, frame, _ = event

    decoded = protocol.decode(frame, direction, proto)  # type: ignore[arg-type]

    assert isinstance(decoded, protocol.Event)


@SETTINGS
@given(
    event_type=st.text(alphabet=string.ascii_lowercase + "._", min_size=3, max_size=30),
    key=st.sampled_from(
        [
            "authorization",
            "api_key",
            "apiKey",
            "client_secret",
            "password",
            "token",
            "headers",
            "x-api-key",
        ]
    ),
    secret=UPPER_TOKENS,
    blob=st.binary(min_size=64, max_size=400),
)
def test_unknown_events_are_scrubbed(event_type: str, key: str, secret: str, blob: bytes) -> None:
    """
    An event of a type we do not model has its secret-named keys and blobs redacted.
    """
    encoded = base64.b64encode(blob).decode()
    frame = orjson.dumps(
        {"type": f"x.{event_type}", key: secret, "data": {"b64": encoded}, "text": f"k=sk-{secret}"}
    )

    sink, _ = _render("ga", "server", frame, "full")

    assert [] == _leaks(sink.text(), [secret, encoded])


@SETTINGS
@given(data=st.binary(max_size=300))
def test_undecodable_frames_log_metadata_only(data: bytes) -> None:
    """
    A frame that does not decode is logged with size, hash prefix and reason only.
    """
    frame = b"\xff" + data  # never valid UTF-8, so never an event

    sink, _ = _render("ga", "client", frame, "full")

    (record,) = sink.records()
    assert "realtime.undecodable" == record["event"]
    assert {"ts", "level", "event", "direction", "size", "sha256", "reason"} == set(record)


# --- the edges an attacker tried (see tests/test_security.py for each one by name) ------

KEY_PREFIXES = st.sampled_from(["sk-", "sk-proj-", "sk-svcacct-", "ek_", "Bearer "])
TEXT_DELTAS = st.sampled_from(
    [
        "response.output_text.delta",
        "response.output_audio_transcript.delta",
        "response.function_call_arguments.delta",
        "conversation.item.input_audio_transcription.delta",
        "response.text.delta",
        "response.audio_transcript.delta",
    ]
)


def _slices(secret: str, n: int) -> list[str]:
    return [secret[i : i + n] for i in range(max(1, len(secret) - n + 1))]


@SETTINGS
@given(
    prefix=KEY_PREFIXES,
    token=UPPER_TOKENS,
    before=st.text(alphabet=string.ascii_lowercase + " ,.", max_size=40),
    cuts=st.lists(st.integers(1, 80), min_size=1, max_size=4),
    event_type=TEXT_DELTAS,
)
def test_no_key_split_over_any_deltas_is_logged(
    prefix: str, token: str, before: str, cuts: list[int], event_type: str
) -> None:
    """
    A key split anywhere, over two to five deltas of one stream, logged whole (audit):
    no 12-character slice of its secret part reaches the log.
    """
    text = f"{before} {prefix}{token} after"
    points = sorted({min(c, len(text) - 1) for c in cuts})
    parts = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    sink = MemorySink()
    recorder = Recorder(make_logger(sink), REDACTOR, EventPolicy({"default": "full"}))
    for part in parts:
        frame = {"type": event_type, "item_id": "item_1", "content_index": 0, "delta": part}
        take(recorder, "server", orjson.dumps(frame))

    assert [] == [s for s in _slices(token, 12) if s in sink.text()]


@SETTINGS
@given(
    prefix=KEY_PREFIXES,
    token=UPPER_TOKENS,
    filler=st.text(alphabet=string.ascii_lowercase + " ", min_size=0, max_size=160),
    limit=st.sampled_from([64, 128, 1024]),
)
def test_no_cut_value_keeps_a_key_prefix(prefix: str, token: str, filler: str, limit: int) -> None:
    """
    A key anywhere around the cut of a bounded value leaves at most 8 of its characters.
    """
    rendered = REDACTOR.cut(f"{filler} {prefix}{token}", limit)

    assert [] == [s for s in _slices(token, 9) if s in rendered]


NAME_PARTS = st.sampled_from(
    ["secret", "token", "password", "pwd", "auth", "credential", "apikey"]
) | st.tuples(
    st.sampled_from(["api", "access", "secret", "private", "session", "subscription", "client"]),
    st.just("key"),
).map(lambda t: f"{t[0]}_{t[1]}")


@SETTINGS
@given(
    qualifier=st.sampled_from(["", "aws", "openai", "refresh", "x", "my", "ocp_apim"]),
    part=NAME_PARTS,
    style=st.sampled_from(["snake", "kebab", "camel", "upper", "title-kebab"]),
    canary=UPPER_TOKENS,
)
def test_no_renamed_credential_is_logged(
    qualifier: str, part: str, style: str, canary: str
) -> None:
    """
    A credential under any spelling of its name (case, `-`, `_`, camel case, a
    qualifier in front), as a JSON key, a header, a query parameter and inside JSON text.
    """
    words = [w for w in [*qualifier.split("_"), *part.split("_")] if w]
    name = {
        "snake": "_".join(words),
        "kebab": "-".join(words),
        "camel": words[0] + "".join(w.title() for w in words[1:]),
        "upper": "_".join(words).upper(),
        "title-kebab": "-".join(w.title() for w in words),
    }[style]
    rendered = [
        orjson.dumps(REDACTOR.scrub({"a": [{name: canary}]})).decode(),
        orjson.dumps(REDACTOR.headers([(name, canary)])).decode(),
        REDACTOR.url(f"https://h.example/p?{name}={canary}"),
        REDACTOR.kept(orjson.dumps({name: canary}).decode()),
    ]

    assert [] == [r for r in rendered if canary in r]


@SETTINGS
@given(
    canary=UPPER_TOKENS,
    where=st.sampled_from(["userinfo", "query", "sdp", "sdp-odd"]),
    field=st.sampled_from(["image_url", "server_url", "note", "sdp"]),
    event_type=st.text(alphabet=string.ascii_lowercase + ".", min_size=3, max_size=20),
)
def test_no_url_or_sdp_secret_in_unmodelled_data_is_logged(
    canary: str, where: str, field: str, event_type: str
) -> None:
    """
    URLs with user info or token queries and SDP bodies with ICE passwords, inside
    unknown events: the secret never reaches the log.
    """
    value = {
        "userinfo": f"https://user:{canary}@mcp.example.com/mcp",
        "query": f"https://cdn.example.com/a.png?w=1&token={canary}&sig={canary}",
        "sdp": f"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\na=ice-pwd:{canary}\r\n",
        "sdp-odd": f"v=0\r\n A=ICE-PWD {canary}\r\n",
    }[where]
    frame = orjson.dumps({"type": f"x.{event_type}", field: value, "nested": [{field: value}]})

    sink, _ = _render("ga", "server", frame, "full")

    assert canary not in sink.text()
