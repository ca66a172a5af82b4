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
from tests.conftest import MemorySink
from tests.helpers import corpus

CORPUS = corpus()
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
        event_set=proto,  # type: ignore[arg-type]
    )
    recorder.text(direction, frame)  # type: ignore[arg-type]
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
