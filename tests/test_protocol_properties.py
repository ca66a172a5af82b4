"""
Properties of `protocol.decode`: it never raises, whatever the bytes, and every event it
accepts unstructures back to exactly the JSON object it came from.
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import protocol
from protocol.converter import make_converter
from protocol.types import UNSET
from tests.helpers import corpus

CORPUS = corpus()
DETAILED = make_converter(detailed_validation=True)  # cattrs' own hooks
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    data=st.binary(max_size=512),
    direction=st.sampled_from(["client", "server"]),
    proto=st.sampled_from(["ga", "beta", "translation"]),
)
def test_decode_never_raises_on_arbitrary_bytes(data: bytes, direction: str, proto: str) -> None:
    """
    Arbitrary bytes decode to something, never an exception.
    """
    decoded = protocol.decode(data, direction, proto)  # type: ignore[arg-type]

    assert isinstance(decoded, protocol.Event | protocol.UnknownEvent | protocol.Undecodable)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(obj: Any, path: tuple[Any, ...], op: str, value: Any) -> Any:
    if not path:
        return value if op == "replace" else obj
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        obj = dict(obj)
        if not rest and op == "delete":
            obj.pop(head, None)
        elif not rest and op == "add":
            obj[f"x_{head}"] = value
        else:
            obj[head] = _mutate(obj[head], rest, op, value)
    elif isinstance(obj, list):
        obj = list(obj)
        obj[head] = _mutate(obj[head], rest, op, value)
    return obj


@st.composite
def mutated_events(draw: st.DrawFn) -> tuple[str, str, bytes]:
    proto, direction, frame = draw(st.sampled_from(CORPUS))
    obj = orjson.loads(frame)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(obj)))
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        obj = _mutate(obj, path, op, draw(JSON))
    return proto, direction, orjson.dumps(obj)


@SETTINGS
@given(event=mutated_events())
def test_decode_never_raises_on_mutated_events(event: tuple[str, str, bytes]) -> None:
    """
    Valid events with fields replaced, deleted or added decode without raising.
    """
    proto, direction, frame = event

    decoded = protocol.decode(frame, direction, proto)  # type: ignore[arg-type]

    assert isinstance(decoded, protocol.Event | protocol.UnknownEvent | protocol.Undecodable)


@SETTINGS
@given(event=mutated_events())
def test_every_accepted_event_round_trips(event: tuple[str, str, bytes]) -> None:
    """
    Whatever `decode` accepts unstructures to exactly the parsed JSON object.
    """
    proto, direction, frame = event

    decoded = protocol.decode(frame, direction, proto)  # type: ignore[arg-type]
    assume(not isinstance(decoded, protocol.Undecodable))

    assert orjson.loads(frame) == protocol.unstructure(decoded)


@SETTINGS
@given(event=mutated_events())
def test_the_hot_path_hooks_accept_exactly_what_the_detailed_converter_accepts(
    event: tuple[str, str, bytes],
) -> None:
    """
    `decode` structures with straight-line hooks and asks the detailed converter (cattrs'
    own generated hooks) only why a frame failed: both must agree on every frame.
    """
    proto, direction, frame = event
    obj = orjson.loads(frame)
    classes = {c.TYPE: c for c in protocol.event_classes(proto, direction)}  # type: ignore[arg-type]
    tag = obj.get("type") if isinstance(obj, dict) else None
    cls = classes.get(tag) if isinstance(tag, str) else None
    assume(cls is not None)

    try:
        detailed: Any = DETAILED.structure(obj, cls)
    except Exception:  # either outcome is a valid example
        detailed = None
    decoded = protocol.decode(frame, direction, proto)  # type: ignore[arg-type]

    # Refused by both, or accepted by both as equal events.
    accepted = None if isinstance(decoded, protocol.Undecodable) else decoded
    assert (detailed is None, detailed) == (accepted is None, accepted)


def _declared_fields(
    model: protocol.Model, obj: Any, path: tuple[Any, ...] = ()
) -> list[tuple[tuple[Any, ...], bool]]:
    """(path, optional) for every declared field of every model in a decoded tree."""
    out = []
    for a in attrs.fields(type(model)):
        if a.name == "extra":
            continue
        out.append(((*path, a.name), a.default is UNSET))
        value, sub = getattr(model, a.name), obj.get(a.name)
        if isinstance(value, protocol.Model) and isinstance(sub, dict):
            out += _declared_fields(value, sub, (*path, a.name))
        elif isinstance(value, list) and isinstance(sub, list):
            for i, (v, s) in enumerate(zip(value, sub, strict=True)):
                if isinstance(v, protocol.Model) and isinstance(s, dict):
                    out += _declared_fields(v, s, (*path, a.name, i))
    return out


def _with_null(obj: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    copy = orjson.loads(orjson.dumps(obj))
    cur = copy
    for key in path[:-1]:
        cur = cur[key]
    cur[path[-1]] = None
    return copy  # type: ignore[no-any-return]


def _at(model: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        model = model[key] if isinstance(key, int) else getattr(model, key)
    return model


NULLABLE_CASES = [
    (proto, direction, frame, path, optional)
    for proto, direction, frame in CORPUS
    for path, optional in _declared_fields(
        protocol.decode(frame, direction, proto),  # type: ignore[arg-type]
        orjson.loads(frame),
    )
]


def test_every_optional_field_accepts_null_and_a_required_one_does_not() -> None:
    """
    For every declared field of every model in every corpus event (present or absent),
    an explicit `null` decodes as None, kept apart from absent, when the field is
    optional; a required field that is `null` makes the event undecodable. Real peers
    send `null` where the spec says string (SPEC §1, invariant 7).
    """
    failures = []
    for proto, direction, frame, path, optional in NULLABLE_CASES:
        nulled = orjson.dumps(_with_null(orjson.loads(frame), path))
        decoded = protocol.decode(nulled, direction, proto)  # type: ignore[arg-type]
        if optional:
            if isinstance(decoded, protocol.Undecodable) or _at(decoded, path) is not None:
                failures.append((proto, direction, path, decoded))
            elif protocol.unstructure(decoded) != orjson.loads(nulled):
                failures.append((proto, direction, path, "not lossless"))
        elif not isinstance(decoded, protocol.Undecodable):
            failures.append((proto, direction, path, "required null accepted"))

    assert [] == failures[:5]
    assert len(NULLABLE_CASES) > 3000  # the corpus reaches every event class's fields


@SETTINGS
@given(st.data())
def test_any_set_of_optional_nulls_decodes(data: st.DataObject) -> None:
    """
    Several optional fields nulled at once, at any depth, still decode, each one None.
    """
    proto, direction, frame = data.draw(st.sampled_from(CORPUS))
    decoded = protocol.decode(frame, direction, proto)  # type: ignore[arg-type]
    optional = [p for p, opt in _declared_fields(decoded, orjson.loads(frame)) if opt]
    assume(optional)
    chosen = data.draw(st.lists(st.sampled_from(optional), min_size=1, max_size=6, unique=True))
    obj = orjson.loads(frame)
    # A null parent hides its children: null the shortest paths last.
    for path in sorted(chosen, key=len, reverse=True):
        obj = _with_null(obj, path)

    result = protocol.decode(orjson.dumps(obj), direction, proto)  # type: ignore[arg-type]

    assert not isinstance(result, protocol.Undecodable), result
    assert orjson.loads(orjson.dumps(obj)) == protocol.unstructure(result)
