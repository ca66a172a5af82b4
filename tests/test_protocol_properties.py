"""
Properties of `protocol.decode`: it never raises, whatever the bytes, and every event it
accepts unstructures back to exactly the JSON object it came from.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import protocol
from protocol.codec import _EXPLAINER
from tests.helpers import corpus, decode_kwargs

CORPUS = corpus()
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
    decoded = protocol.decode(data, direction, **decode_kwargs(proto))  # type: ignore[arg-type]

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

    decoded = protocol.decode(frame, direction, **decode_kwargs(proto))  # type: ignore[arg-type]

    assert isinstance(decoded, protocol.Event | protocol.UnknownEvent | protocol.Undecodable)


@SETTINGS
@given(event=mutated_events())
def test_every_accepted_event_round_trips(event: tuple[str, str, bytes]) -> None:
    """
    Whatever `decode` accepts unstructures to exactly the parsed JSON object.
    """
    proto, direction, frame = event

    decoded = protocol.decode(frame, direction, **decode_kwargs(proto))  # type: ignore[arg-type]
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
        detailed: Any = _EXPLAINER.structure(obj, cls)
    except Exception:  # either outcome is a valid example
        detailed = None
    decoded = protocol.decode(frame, direction, **decode_kwargs(proto))  # type: ignore[arg-type]

    # Refused by both, or accepted by both as equal events.
    accepted = None if isinstance(decoded, protocol.Undecodable) else decoded
    assert (detailed is None, detailed) == (accepted is None, accepted)
