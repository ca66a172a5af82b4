"""
protocol/: every event decodes to its class, nothing is lost, nothing is coerced, and
anything else is an `Undecodable` with a reason that names a path, never a value.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import orjson
import pytest

import protocol
from protocol import events as ga
from protocol.items import FlatItem, McpTool, MessageItem
from protocol.types import UNSET
from tests.helpers import corpus, sdk_field_paths, spec_examples

EXAMPLES = spec_examples()


@pytest.mark.parametrize(
    ("schema", "proto", "direction", "event"), EXAMPLES, ids=[e[0] for e in EXAMPLES]
)
def test_every_spec_example_decodes_to_its_class(
    schema: str, proto: str, direction: str, event: dict[str, Any]
) -> None:
    """
    Each example event of the reference spec decodes to the class with its type tag.
    """
    decoded = protocol.decode(orjson.dumps(event), direction, proto)  # type: ignore[arg-type]

    assert isinstance(decoded, protocol.Event), decoded
    assert event["type"] == type(decoded).TYPE


@pytest.mark.parametrize(
    ("schema", "proto", "direction", "event"), EXAMPLES, ids=[e[0] for e in EXAMPLES]
)
def test_every_spec_example_round_trips(
    schema: str, proto: str, direction: str, event: dict[str, Any]
) -> None:
    """
    Unstructuring a decoded example gives back exactly the parsed JSON object.
    """
    decoded = protocol.decode(orjson.dumps(event), direction, proto)  # type: ignore[arg-type]

    assert event == protocol.unstructure(decoded)  # type: ignore[arg-type]


CORPUS = corpus()


@pytest.mark.parametrize(("proto", "direction", "frame"), CORPUS)
def test_corpus_events_decode_and_round_trip(proto: str, direction: str, frame: bytes) -> None:
    """
    Every corpus event (every field of every class filled) decodes and round-trips.
    """
    decoded = protocol.decode(frame, direction, proto)  # type: ignore[arg-type]

    assert isinstance(decoded, protocol.Event)
    assert not isinstance(decoded, protocol.UnknownEvent)
    assert orjson.loads(frame) == protocol.unstructure(decoded)


def test_every_event_type_has_a_class() -> None:
    """
    Every event type the SDK defines, per protocol and direction, has its own class.
    """
    sdk = {(p, d, e) for p, d, e, _, _ in sdk_field_paths()}
    modeled = {
        (p, d, cls.TYPE)
        for p, d, _ in sdk
        for cls in protocol.event_classes(p, d)  # type: ignore[arg-type]
    }

    assert set() == sdk - modeled


_SEGMENT = re.compile(r"^(\w+)(\[\])?(?:<\w+:Literal\['([^']*)'\][^>]*>)?$")
_SAMPLES: dict[str, Any] = {"str": "x", "int": 1, "float": 1.5, "bool": True, "object": {}}


def _sample(typ: str) -> Any:
    typ = typ.replace(" | NoneType", "")
    if typ.startswith(("Dict[", "dict[")):
        return {}
    if typ.startswith(("List[", "list[")):
        return []
    if m := re.match(r"Literal\[(\d+)", typ):
        return int(m.group(1))
    if m := re.match(r"Literal\['([^']*)'", typ):
        return m.group(1)
    return _SAMPLES.get(typ, "x")


def _segments(path: str) -> list[tuple[str, bool, str | None]]:
    out = []
    for part in re.findall(r"(?:[^.<]|<[^>]*>)+", path):
        m = _SEGMENT.match(part)
        assert m, part
        out.append((m.group(1), bool(m.group(2)), m.group(3)))
    return out


def _event_with(event_type: str, cls: type, path: str, typ: str) -> dict[str, Any]:
    root: dict[str, Any] = {"type": event_type}
    cur = root
    segments = _segments(path)
    for i, (name, is_list, tag) in enumerate(segments):
        if i == len(segments) - 1 and tag is None:
            cur[name] = [_sample(typ)] if is_list else _sample(typ)
            break
        child: dict[str, Any] = {"type": tag} if tag else {}
        cur[name] = [child] if is_list else child
        cur = child
    for f in attrs.fields(cls):
        if f.default is attrs.NOTHING and f.name not in root:
            root[f.name] = {} if f.name in ("item", "session", "response", "error") else "x"
    return root


def _lands_in_extra(model: object, path: str) -> str | None:
    cur: Any = model
    for name, _, _ in _segments(path):
        if not isinstance(cur, protocol.Model):
            return None  # an opaque Json field: modeled as a whole
        if name in cur.extra:
            return f"{name!r} is not declared on {type(cur).__name__}"
        cur = getattr(cur, name, None)
        if isinstance(cur, list):
            cur = cur[0] if cur else None
    return None


FIELDS = [row for row in sdk_field_paths() if row[3] != "type"]


@pytest.mark.parametrize(("proto", "direction", "event_type", "path", "typ"), FIELDS)
def test_every_sdk_field_is_declared(
    proto: str, direction: str, event_type: str, path: str, typ: str
) -> None:
    """
    Each field path of each SDK event decodes into a declared field, not into `extra`.
    """
    classes = {c.TYPE: c for c in protocol.event_classes(proto, direction)}  # type: ignore[arg-type]
    event = _event_with(event_type, classes[event_type], path, typ)

    decoded = protocol.decode(orjson.dumps(event), direction, proto)  # type: ignore[arg-type]

    assert isinstance(decoded, classes[event_type]), decoded
    assert None is _lands_in_extra(decoded, path)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b'{"type": "input_audio_buffer.append", "audio": 123}', "$.audio: expected str, got int"),
        (b'{"type": "input_audio_buffer.append"}', "$.audio: required field missing"),
        (b"[1, 2]", "expected a JSON object, got array"),
        (b'"hello"', "expected a JSON object, got str"),
        (b'{"audio": "AAAA"}', "$.type: required field missing"),
        (b'{"type": 7}', "$.type: expected str, got int"),
        (b'{"type": null}', "$.type: expected str, got null"),
        (
            b'{"type":"session.update","session":{"tools":[{"type":"function"},{"type":"function","name":3}]}}',
            "$.session.tools[1].name: expected str, got int",
        ),
        (
            b'{"type":"conversation.item.create","item":{"type":"message","content":[{"audio":false}]}}',
            "$.item.content[0].audio: expected str, got bool",
        ),
        (b'{"type":"response.create","response":"now"}', "$.response: expected object, got str"),
    ],
)
def test_undecodable_reasons_name_the_path(frame: bytes, reason: str) -> None:
    """
    A frame with a wrong shape decodes to `Undecodable` whose reason names path and types.
    """
    decoded = protocol.decode(frame, "client")

    assert protocol.Undecodable(reason=reason, size=len(frame)) == decoded


@pytest.mark.parametrize(
    "frame",
    [
        b"{not json",
        b"\xff\xfe{}",
        b'{"type": "x", "s": "\\ud800"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"type": "x", "n": ' + b"9" * 5000 + b"}",
        b'{"type": "x", "n": NaN}',
        b"",
    ],
    ids=["malformed", "invalid-utf8", "lone-surrogate", "deep", "5000-digits", "nan", "empty"],
)
def test_bad_json_is_undecodable_and_the_reason_quotes_nothing(frame: bytes) -> None:
    """
    Malformed JSON of every kind is `Undecodable`, and its reason never quotes the input.
    """
    decoded = protocol.decode(frame, "server")

    assert isinstance(decoded, protocol.Undecodable)
    assert decoded.reason.startswith("invalid JSON: ")
    assert len(frame) == decoded.size
    assert "9999" not in decoded.reason
    assert "ud800" not in decoded.reason


def test_huge_integer_in_a_typed_field_is_undecodable() -> None:
    """
    A > 64-bit integer where an int is declared is not silently accepted as a float.
    """
    frame = (
        b'{"type":"conversation.item.truncate","item_id":"i","audio_end_ms":1180591620717411303424}'
    )

    decoded = protocol.decode(frame, "client")

    assert (
        protocol.Undecodable(reason="$.audio_end_ms: expected int, got float", size=len(frame))
        == decoded
    )


@pytest.mark.parametrize(
    ("frame", "path"),
    [
        (b'{"type":"response.output_text.delta","delta":123}', "$.delta"),
        (b'{"type":"session.updated","session":{"model":42}}', "$.session.model"),
        (
            b'{"type":"session.updated","session":{"parallel_tool_calls":"false"}}',
            "$.session.parallel_tool_calls",
        ),
        (
            b'{"type":"response.output_item.added","item":{"type":"mcp_approval_response","approve":1}}',
            "$.item.approve",
        ),
        (b'{"type":"response.output_item.added","output_index":"0","item":{}}', "$.output_index"),
    ],
)
def test_no_silent_coercion(frame: bytes, path: str) -> None:
    """
    Numbers are not strings, strings are not bools or ints: exact JSON types only.
    """
    decoded = protocol.decode(frame, "server")

    assert isinstance(decoded, protocol.Undecodable)
    assert decoded.reason.startswith(f"{path}: expected ")


def test_float_field_accepts_an_integral_number() -> None:
    """
    JSON has one number type: `"speed": 1` is a valid float.
    """
    decoded = protocol.decode(
        b'{"type":"session.update","session":{"audio":{"output":{"speed":1}}}}', "client"
    )

    assert isinstance(decoded, ga.SessionUpdate)


def test_explicit_null_is_distinct_from_absent() -> None:
    """
    `"turn_detection": null` (VAD off) decodes to None; an absent key stays UNSET.
    """
    off = protocol.decode(
        b'{"type":"session.update","session":{"audio":{"input":{"turn_detection":null}}}}', "client"
    )
    absent = protocol.decode(
        b'{"type":"session.update","session":{"audio":{"input":{}}}}', "client"
    )

    assert isinstance(off, ga.SessionUpdate)
    assert isinstance(absent, ga.SessionUpdate)
    assert None is off.session.audio.input.turn_detection  # type: ignore[union-attr]
    assert UNSET is absent.session.audio.input.turn_detection  # type: ignore[union-attr]
    assert {
        "type": "session.update",
        "session": {"audio": {"input": {"turn_detection": None}}},
    } == protocol.unstructure(off)


def test_unknown_keys_are_kept_at_every_depth() -> None:
    """
    Keys the model does not declare are kept in `extra` and come back on unstructure.
    """
    frame = b'{"type":"session.update","x_top":1,"session":{"x_mid":[1],"tools":[{"type":"mcp","x_deep":{"a":null}}]}}'

    decoded = protocol.decode(frame, "client")

    assert isinstance(decoded, ga.SessionUpdate)
    assert {"x_top": 1} == decoded.extra
    assert isinstance(decoded.session.tools, list)
    assert isinstance(decoded.session.tools[0], McpTool)
    assert {"x_deep": {"a": None}} == decoded.session.tools[0].extra
    assert orjson.loads(frame) == protocol.unstructure(decoded)


def test_unknown_event_type_keeps_type_and_fields() -> None:
    """
    An event type we do not model is an `UnknownEvent` with its type and fields.
    """
    decoded = protocol.decode(b'{"type":"response.future_thing.delta","delta":"x","n":1}', "server")

    assert (
        protocol.UnknownEvent(type="response.future_thing.delta", extra={"delta": "x", "n": 1})
        == decoded
    )  # type: ignore[arg-type]


def test_nested_session_with_its_own_type_decodes() -> None:
    """
    A session config whose own `type` differs from the event's decodes (no tag clash).
    """
    decoded = protocol.decode(
        b'{"type":"session.update","session":{"type":"transcription"}}', "client"
    )

    assert isinstance(decoded, ga.SessionUpdate)
    assert "transcription" == decoded.session.type


def test_tools_is_a_list_in_every_shape() -> None:
    """
    `tools` decodes as a list in GA sessions, beta sessions and response parameters.
    """
    tools = b'[{"type":"function","name":"a"},{"type":"mcp","server_label":"b"}]'
    frames = [
        (b'{"type":"session.update","session":{"tools":' + tools + b"}}", False),
        (b'{"type":"session.update","session":{"tools":' + tools + b"}}", True),
        (b'{"type":"response.create","response":{"tools":' + tools + b"}}", False),
    ]

    for frame, beta in frames:
        decoded = protocol.decode(frame, "client", "beta" if beta else "ga")
        inner = getattr(decoded, "session", None) or decoded.response  # type: ignore[union-attr]
        assert 2 == len(inner.tools), frame


def test_untagged_beta_item_decodes_flat() -> None:
    """
    A beta item without `type` decodes as the flat item, its arguments still tool text.
    """
    decoded = protocol.decode(
        b'{"type":"conversation.item.create","item":{"arguments":"{}"}}', "client", "beta"
    )

    assert isinstance(decoded, ga.ConversationItemCreate)
    assert FlatItem(arguments="{}") == decoded.item  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "frame",
    [
        b'{"type":"response.audio.delta","delta":"AAAA","response_id":"resp_1"}',
        b'{"type":"response.text.delta","delta":"Hi","item_id":"item_1"}',
        b'{"type":"response.audio_transcript.done","transcript":"Hi"}',
    ],
)
@pytest.mark.parametrize("proto", ["ga", "beta", "translation"])
def test_a_name_only_the_beta_set_defines_decodes_on_any_socket(frame: bytes, proto: str) -> None:
    """
    Beta output names decode as beta events whatever the socket (Azure sends them on GA
    paths without the beta header): no protocol needs naming for them.
    """
    decoded = protocol.decode(frame, "server", proto)  # type: ignore[arg-type]

    assert orjson.loads(frame)["type"] == type(decoded).TYPE  # type: ignore[union-attr]
    assert type(decoded).__module__ == "protocol.beta"


def test_the_named_protocol_settles_a_shared_name() -> None:
    """
    `session.update` is in every set: the socket's protocol decides which class it is,
    and with none named it is GA's.
    """
    frame = b'{"type":"session.update","session":{"modalities":["text"]}}'

    assert type(protocol.decode(frame, "client")) is ga.SessionUpdate
    assert type(protocol.decode(frame, "client", "beta")).__name__ == "BetaSessionUpdate"


@pytest.mark.parametrize(
    ("role", "part", "problems"),
    [
        ("system", "input_text", []),
        (
            "system",
            "input_audio",
            ["$.item.content[0].type: not allowed for role system (allowed: input_text)"],
        ),
        ("user", "input_image", []),
        (
            "user",
            "output_text",
            [
                "$.item.content[0].type: not allowed for role user (allowed: input_audio, input_image, input_text)"
            ],
        ),
        ("assistant", "output_audio", []),
        (
            "assistant",
            "input_text",
            [
                "$.item.content[0].type: not allowed for role assistant (allowed: output_audio, output_text)"
            ],
        ),
    ],
)
def test_validate_reports_content_parts_per_role(role: str, part: str, problems: list[str]) -> None:
    """
    `validate` reports a content part a role may not carry, and does not raise.
    """
    frame = orjson.dumps(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": role, "content": [{"type": part}]},
        }
    )
    decoded = protocol.decode(frame, "client")

    assert isinstance(decoded, ga.ConversationItemCreate)
    assert isinstance(decoded.item, MessageItem)
    assert problems == protocol.validate(decoded)


@pytest.mark.parametrize(
    ("route", "body", "response", "cls"),
    [
        (
            "client_secrets",
            b'{"session":{"type":"realtime","model":"gpt-realtime"}}',
            False,
            "ClientSecretRequest",
        ),
        (
            "client_secrets",
            b'{"value":"ek_1","expires_at":1,"session":{"type":"realtime"}}',
            True,
            "ClientSecretResponse",
        ),
        (
            "sessions",
            b'{"model":"gpt-4o-realtime-preview","client_secret":{"value":"ek_2","expires_at":2}}',
            True,
            "BetaSession",
        ),
        ("calls/refer", b'{"target_uri":"tel:+14155550123"}', False, "CallRefer"),
        ("calls/reject", b'{"status_code":486}', False, "CallReject"),
        ("calls/accept", b'{"type":"realtime","instructions":"hi"}', False, "Session"),
    ],
)
def test_rest_bodies_decode_by_route(route: str, body: bytes, response: bool, cls: str) -> None:
    """
    REST bodies decode to their class by route key, and round-trip.
    """
    decoded = protocol.decode_rest(route, body, response=response)

    assert cls == type(decoded).__name__
    assert orjson.loads(body) == protocol.unstructure(decoded)  # type: ignore[arg-type]


def test_rest_body_of_wrong_type_is_undecodable() -> None:
    """
    A REST body with a wrong field type is `Undecodable` with the path.
    """
    decoded = protocol.decode_rest("calls/reject", b'{"status_code":"486"}')

    assert protocol.Undecodable(reason="$.status_code: expected int, got str", size=21) == decoded


@pytest.mark.parametrize(
    "frame",
    [
        # LiveKit's plugin, on every generate_reply():
        b'{"type":"response.create","response":{"instructions":null,"tools":null,'
        b'"conversation":null,"output_modalities":null,"input":null,"audio":null}}',
        b'{"type":"session.update","session":{"type":"realtime","instructions":null,'
        b'"tools":null,"output_modalities":null,"audio":null}}',
        b'{"type":"conversation.item.create","item":{"id":null,"type":"message","role":"user",'
        b'"content":[{"type":"input_text","text":"hi"}]}}',
    ],
)
def test_what_real_clients_send_with_nulls_decodes(frame: bytes) -> None:
    """
    Frames real clients send, with `null` in optional fields, decode typed and round-trip.
    """
    decoded = protocol.decode(frame, "client")

    assert isinstance(decoded, protocol.Event), decoded
    assert orjson.loads(frame) == protocol.unstructure(decoded)


def test_no_event_class_is_an_instance_of_another_event_type() -> None:
    """
    Event classes share fields through private bases only: a decoded `response.done` is
    not an instance of `ResponseCreated`, so an `isinstance` check answers right.
    """
    classes = {
        cls
        for proto in protocol.EVENT_SETS
        for direction in ("client", "server")
        for cls in protocol.event_classes(proto, direction)
    }

    assert [] == sorted(
        f"{cls.__name__}({parent.__name__})"
        for cls in classes
        for parent in cls.__mro__[1:]
        if parent in classes
    )
