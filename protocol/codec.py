"""
The cattrs converter and the decoding entry points: `decode` for WebSocket frames,
`decode_rest` for REST bodies, `unstructure` for turning a model back into JSON.

The converter is strict where cattrs is lenient by default: scalars must have their
exact JSON type (`123` is not a string, `"false"` is not a bool), arrays and objects
must be arrays and objects. It is lossless where cattrs would drop data: absent keys
stay absent (`UNSET`), undeclared keys go to `extra`. `make_converter()` builds a fresh
converter with these rules so that the redactor can add its own unstructure hooks on a
converter of its own; the module's `CONVERTER` is built once, at import. Its model hooks
are generated here as straight-line functions (the per-frame path); a second converter
with cattrs' own detailed hooks only explains why a frame failed.

`decode` (and `decoder`, the same bound to one protocol and direction) never raises: a
frame is a typed event, an `UnknownEvent` (a type we do not model, its fields kept) or an
`Undecodable` with a reason that names a JSON path and types, never a value.
"""

from __future__ import annotations

import linecache
import types
import typing
from collections.abc import Callable
from typing import Any, Final, Literal, Union

import attrs
import orjson
from cattrs import Converter, IterableValidationError, transform_error
from cattrs.cols import is_mapping, is_sequence
from cattrs.errors import IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.strategies import configure_tagged_union

from protocol import beta as beta_events
from protocol import events as ga_events
from protocol import translation as translation_events
from protocol.base import Direction, Event, Model, Undecodable, UnknownEvent
from protocol.items import FlatItem, FlatTool, Item, Tool
from protocol.rest import REST_BODIES
from protocol.types import UNSET, Extras, Json, Unset

EventSet = Literal["ga", "beta", "translation"]
EVENT_SETS: Final[tuple[EventSet, ...]] = ("ga", "beta", "translation")
Decoded = Event | UnknownEvent | Undecodable

_JSON_TYPE_NAMES: Final = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    type(None): "null",
    dict: "object",
    list: "array",
}


def _json_type(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), "unknown")


def _exact(expected: type, name: str) -> Callable[[object, object], Any]:
    def structure(value: object, _: object) -> Any:
        if type(value) is expected:
            return value
        raise TypeError(f"expected {name}, got {_json_type(value)}")

    return structure


def _structure_float(value: object, _: object) -> float:
    # JSON has one number type: an integral temperature (`1`) is a valid float.
    if type(value) is float or type(value) is int:
        return value
    raise TypeError(f"expected float, got {_json_type(value)}")


def _identity(value: object, _: object = None) -> object:
    return value


def _is_union(t: object) -> bool:
    return typing.get_origin(t) in (Union, types.UnionType)


def _is_optional_or_mixed(t: object) -> bool:
    """A union this module handles: one with `Unset` or `None`, or a string-or-object.

    Unions of model classes alone are tagged unions, configured by name below.
    """
    if not _is_union(t):
        return False
    rest, nullable = _split_union(t)
    return nullable or len(rest) < len(typing.get_args(t)) or not all(attrs.has(r) for r in rest)


def _split_union(t: object) -> tuple[list[Any], bool]:
    """The members of a union other than `Unset` and `None`, and whether `None` is one."""
    args = typing.get_args(t)
    rest = [a for a in args if a is not Unset and a is not type(None)]
    return rest, type(None) in args


def _locate_list_error(
    value: list[Any], inner: Callable[[object, object], Any], item_type: Any, exc: Exception, t: Any
) -> list[Any]:
    for i, v in enumerate(value):
        try:
            inner(v, item_type)
        except Exception as e:  # noqa: BLE001
            e.__notes__ = [
                *getattr(e, "__notes__", []),
                IterableValidationNote(f"@ index {i}", i, item_type),
            ]
            raise IterableValidationError("structuring failed", [e], t) from None
    raise exc


def _runtime_class(t: Any) -> type:
    supertype = getattr(t, "__supertype__", None)
    return _runtime_class(supertype) if supertype is not None else typing.get_origin(t) or t


def make_converter(*, detailed_validation: bool = False) -> Converter:
    """A strict, lossless converter for every protocol model.

    Without detailed validation the generated code is leaner; `decode` uses it and, only
    when a frame fails, structures it again with detailed validation to name the path.
    """
    conv = Converter(detailed_validation=detailed_validation)
    conv.register_structure_hook(str, _exact(str, "str"))
    conv.register_structure_hook(int, _exact(int, "int"))
    conv.register_structure_hook(bool, _exact(bool, "bool"))
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(Json, _identity)
    conv.register_unstructure_hook(Json, _identity)
    conv.register_structure_hook(Extras, _identity)
    conv.register_unstructure_hook(Extras, _identity)

    def list_structure(t: Any) -> Callable[[object, object], Any]:
        inner = conv.get_structure_hook(typing.get_args(t)[0])
        item_type = typing.get_args(t)[0]

        def structure(value: object, _: object) -> list[Any]:
            if type(value) is not list:
                raise TypeError(f"expected array, got {_json_type(value)}")
            try:
                return [inner(v, item_type) for v in value]
            except Exception as exc:  # noqa: BLE001 (re-raised with its index)
                # Find the failing index only on the error path; the happy path stays a
                # plain comprehension.
                return _locate_list_error(value, inner, item_type, exc, t)

        return structure

    def dict_structure(t: Any) -> Callable[[object, object], Any]:
        value_type = typing.get_args(t)[1]
        inner = conv.get_structure_hook(value_type)

        def structure(value: object, _: object) -> dict[str, Any]:
            if type(value) is not dict:
                raise TypeError(f"expected object, got {_json_type(value)}")
            return {k: inner(v, value_type) for k, v in value.items()}

        return structure

    conv.register_structure_hook_factory(is_sequence, list_structure)
    conv.register_structure_hook_factory(is_mapping, dict_structure)

    def union_structure(t: Any) -> Callable[[object, object], Any]:
        rest, nullable = _split_union(t)
        if len(rest) == 1:
            inner_type = rest[0]
            inner = conv.get_structure_hook(inner_type)
        elif all(attrs.has(r) for r in rest):
            inner_type = Union[tuple(rest)]  # noqa: UP007 (a runtime union object)
            inner = conv.get_structure_hook(inner_type)
        else:
            # A string or an object (prompt variables): choose by the JSON type.
            (obj_type,) = [r for r in rest if attrs.has(r)]
            (str_type,) = [r for r in rest if not attrs.has(r)]
            str_hook = conv.get_structure_hook(str_type)
            obj_hook = conv.get_structure_hook(obj_type)
            inner_type = t

            def inner(value: object, _: object) -> Any:
                if type(value) is str:
                    return str_hook(value, str_type)
                return obj_hook(value, obj_type)

        if not nullable:
            # Every hook here ignores its type argument: hand cattrs the inner hook
            # itself and save a call per field.
            return inner
        return lambda value, _: None if value is None else inner(value, inner_type)

    def union_unstructure(t: Any) -> Callable[[Any], Any]:
        rest, _ = _split_union(t)
        if len(rest) == 1:
            inner = conv.get_unstructure_hook(rest[0])
        else:
            by_class = {_runtime_class(r): conv.get_unstructure_hook(r) for r in rest}

            def inner(value: Any) -> Any:
                hook = by_class.get(value.__class__)
                return hook(value) if hook else conv.unstructure(value, value.__class__)

        return lambda value: None if value is None else inner(value)

    conv.register_structure_hook_factory(_is_optional_or_mixed, union_structure)
    conv.register_unstructure_hook_factory(_is_optional_or_mixed, union_unstructure)

    def model_structure(cls: type[Model]) -> Callable[[object, object], Any]:
        if not detailed_validation:
            return _flat_structure_fn(cls, conv)
        base = make_dict_structure_fn(cls, conv, extra=override(omit=True))
        known = frozenset(a.name for a in attrs.fields(cls)) | {"type"}

        def structure(value: object, _: object) -> Model:
            if type(value) is not dict:
                raise TypeError(f"expected object, got {_json_type(value)}")
            obj = base(value, cls)
            if len(value) > len(known) or not value.keys() <= known:
                obj.extra.update((k, value[k]) for k in value.keys() - known)
            return obj

        return structure

    def model_unstructure(cls: type[Model]) -> Callable[[Any], dict[str, Any]]:
        base = make_dict_unstructure_fn(
            cls, conv, extra=override(omit=True), _cattrs_omit_if_default=True
        )
        extras = conv.get_unstructure_hook(Extras)
        tag = getattr(cls, "TYPE", "")

        def unstructure(obj: Any) -> dict[str, Any]:
            out: dict[str, Any] = base(obj)
            if tag:
                # The tag first: records read better with the type at the front.
                out = {"type": tag, **out}
            if obj.extra:
                out.update(extras(obj.extra))
            return out

        return unstructure

    def is_model(t: Any) -> bool:
        return isinstance(t, type) and issubclass(t, Model)

    conv.register_structure_hook_factory(is_model, model_structure)
    conv.register_unstructure_hook_factory(is_model, model_unstructure)

    for union, flat in ((Item, FlatItem), (Tool, FlatTool)):
        configure_tagged_union(
            union,
            conv,
            # The flat class is the default, for a missing or unknown tag; it has no
            # tag of its own and keeps `type` as an ordinary field.
            tag_generator=lambda cl: getattr(cl, "TYPE", "\0"),
            tag_name="type",
            default=flat,
        )
        # Unstructure by each value's own class: its hook writes its own tag, and a
        # flat object keeps the tag it arrived with.
        conv.register_unstructure_hook(union, lambda v: conv.unstructure(v, v.__class__))
    return conv


_SCALAR_TESTS: Final = {
    str: "type({v}) is not str",
    int: "type({v}) is not int",
    bool: "type({v}) is not bool",
    float: "type({v}) is not float and type({v}) is not int",
}


def _mismatch(expected: str, value: object) -> TypeError:
    return TypeError(f"expected {expected}, got {_json_type(value)}")


def _flat_structure_fn(cls: type[Model], conv: Converter) -> Callable[[object, object], Any]:
    """A model's structure hook as one straight-line function, for the hot path.

    cattrs' generated hook calls a hook per field and builds a keyword dict; here the
    scalar fields (strings and their sensitivity types, ints, floats, bools, opaque
    JSON) are checked inline and only nested models, lists and maps call their hooks.
    It accepts exactly what the detailed converter accepts (the tests hold the two to
    that); on failure it raises, and `decode` asks the detailed converter for the path.
    """
    hints = typing.get_type_hints(cls)
    fields = [a for a in attrs.fields(cls) if a.name != "extra"]
    names = {a.name for a in fields}
    ns: dict[str, Any] = {
        "cls": cls,
        "UNSET": UNSET,
        "known": frozenset(names | {"type"}),
        "_mismatch": _mismatch,
        "_json_type": _json_type,
        "new": object.__new__,
    }
    lines = [
        "def structure(o, _):",
        "    if type(o) is not dict:",
        "        raise TypeError(f'expected object, got {_json_type(o)}')",
        "    g = o.get",
        # A `type` key the model does not declare is its tag: known, not kept.
        "    n = 0" if "type" in names else "    n = 1 if 'type' in o else 0",
    ]
    for i, a in enumerate(fields):
        t = hints[a.name]
        members = typing.get_args(t) if _is_union(t) else (t,)
        rest = [m for m in members if m is not Unset and m is not type(None)]
        inner = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
        nullable = type(None) in members
        v = f"v{i}"
        if Unset in members:  # absent stays UNSET; present counts as a known key
            lines += [f"    {v} = g({a.name!r}, UNSET)", f"    if {v} is not UNSET:"]
            pad = " " * 8
        else:  # required: a missing key raises KeyError
            lines.append(f"    {v} = o[{a.name!r}]")
            pad = " " * 4
        lines.append(f"{pad}n += 1")
        scalar = _runtime_class(inner) if len(rest) == 1 else None
        if inner is Json:
            continue
        if scalar in _SCALAR_TESTS:
            test = _SCALAR_TESTS[scalar].format(v=v)
            if nullable:
                test = f"{v} is not None and ({test})"
            lines += [f"{pad}if {test}:", f"{pad}    raise _mismatch({scalar.__name__!r}, {v})"]
        else:
            ns[f"h{i}"], ns[f"t{i}"] = conv.get_structure_hook(inner), inner
            call = f"{v} = h{i}({v}, t{i})"
            lines.append(f"{pad}if {v} is not None: {call}" if nullable else f"{pad}{call}")
    # The instance is filled in slot by slot: every field is set here (absent ones to
    # UNSET, their default), and the models have no validators or converters, so this is
    # what `__init__` would do, without a call with a keyword per field.
    lines += [
        "    obj = new(cls)",
        "    obj.extra = {} if len(o) == n else {k: x for k, x in o.items() if k not in known}",
        *(f"    obj.{a.name} = v{i}" for i, a in enumerate(fields)),
        "    return obj",
    ]
    source = "\n".join(lines)
    filename = f"<earshot structure {cls.__module__}.{cls.__qualname__}>"
    # Registered with linecache, as cattrs does, so a traceback shows the source.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), ns)  # generated from our own models only
    fn: Callable[[object, object], Any] = ns["structure"]
    return fn


CONVERTER: Final = make_converter()
_EXPLAINER: Final = make_converter(detailed_validation=True)

_EVENT_SETS: Final[dict[tuple[EventSet, Direction], tuple[type[Event], ...]]] = {
    # The spec keeps the transcription-session events in its GA schemas too.
    ("ga", "client"): (*ga_events.CLIENT_EVENTS, beta_events.TranscriptionSessionUpdate),
    ("ga", "server"): (
        *ga_events.SERVER_EVENTS,
        beta_events.TranscriptionSessionCreated,
        beta_events.TranscriptionSessionUpdated,
    ),
    ("beta", "client"): beta_events.BETA_CLIENT_EVENTS,
    ("beta", "server"): beta_events.BETA_SERVER_EVENTS,
    ("translation", "client"): translation_events.TRANSLATION_CLIENT_EVENTS,
    ("translation", "server"): translation_events.TRANSLATION_SERVER_EVENTS,
}


def event_classes(protocol: EventSet, direction: Direction) -> tuple[type[Event], ...]:
    """Every event class of one protocol and direction."""
    return _EVENT_SETS[(protocol, direction)]


def _table(protocol: EventSet, direction: Direction) -> dict[str, Any]:
    """Type tag → (class, hook) for one socket: its own set first, then every name that the
    other sets define (Azure sends beta names on GA paths); where those share a name,
    GA's class is taken before beta's, and beta's before translation's."""
    table: dict[str, Any] = {}
    for proto in (protocol, *(p for p in EVENT_SETS if p != protocol)):
        for cls in _EVENT_SETS[(proto, direction)]:
            table.setdefault(cls.TYPE, (cls, CONVERTER.get_structure_hook(cls)))
    return table


_TABLES: Final = {
    (protocol, direction): _table(protocol, direction)
    for protocol in EVENT_SETS
    for direction in ("client", "server")
}


def _reason(exc: BaseException) -> str:
    """A failure's JSON path and types; never a value (values may be secrets)."""

    def fmt(e: BaseException, _type: Any) -> str:
        if isinstance(e, KeyError):
            return "required field missing"
        if isinstance(e, TypeError | ValueError) and e.args and isinstance(e.args[0], str):
            msg: str = e.args[0]
            return msg if msg.startswith("expected ") else type(e).__name__
        return type(e).__name__

    try:
        messages = transform_error(exc, path="$", format_exception=fmt)
    except Exception:  # noqa: BLE001 (a reason must never fail the decode)
        return type(exc).__name__
    parts = []
    for m in messages[:3]:
        msg, _, path = m.rpartition(" @ ")
        parts.append(f"{path}: {msg}" if msg else m)
    return "; ".join(parts)


def _parse(data: bytes) -> tuple[dict[str, Any] | None, str]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # `msg` describes the fault and where; the exception's `doc` is the payload.
        return None, f"invalid JSON: {str(exc.msg)[:120]} at byte {exc.pos}"
    except Exception as exc:  # noqa: BLE001
        return None, f"invalid JSON: {type(exc).__name__}"
    if type(obj) is not dict:
        return None, f"expected a JSON object, got {_json_type(obj)}"
    return obj, ""


def _make_decoder(direction: Direction, protocol: EventSet) -> Callable[[bytes], Decoded]:
    table = _TABLES[(protocol, direction)]
    loads = orjson.loads

    def decode_frame(data: bytes) -> Decoded:
        try:
            obj = loads(data)
        except Exception:  # noqa: BLE001 (the reason is worked out off the hot path)
            return Undecodable(reason=_parse(data)[1], size=len(data))
        tag = obj.get("type") if type(obj) is dict else None
        entry = table.get(tag) if type(tag) is str else None
        if entry is None:
            return _not_an_event(obj, tag, data)
        try:
            event: Event = entry[1](obj, entry[0])
        except Exception:  # noqa: BLE001 (fail open: the frame is still forwarded)
            return Undecodable(reason=_explain(obj, entry[0]), size=len(data))
        return event

    return decode_frame


def _not_an_event(obj: object, tag: object, data: bytes) -> UnknownEvent | Undecodable:
    """A frame that is not one of the table's events: an unknown type, or not an event."""
    if type(obj) is not dict:
        return Undecodable(reason=f"expected a JSON object, got {_json_type(obj)}", size=len(data))
    if type(tag) is not str:
        missing = "type" not in obj
        problem = "required field missing" if missing else f"expected str, got {_json_type(tag)}"
        return Undecodable(reason=f"$.type: {problem}", size=len(data))
    return UnknownEvent(type=tag, extra=Extras({k: v for k, v in obj.items() if k != "type"}))


_DECODERS: Final = {
    (direction, protocol): _make_decoder(direction, protocol)
    for direction in ("client", "server")
    for protocol in EVENT_SETS
}


def decoder(direction: Direction, protocol: EventSet = "ga") -> Callable[[bytes], Decoded]:
    """`decode` for one direction of one socket, its event table looked up once: what a
    connection holds for each of its two legs. Built at import; never raises."""
    return _DECODERS[(direction, protocol)]


def decode(data: bytes, direction: Direction, protocol: EventSet = "ga") -> Decoded:
    """Decode one text frame. Never raises.

    `protocol` is the socket's event set (GA, the beta protocol, or the translation
    socket): it settles the names that several sets share. A name only another set
    defines decodes too, as that set's event."""
    return _DECODERS[(direction, protocol)](data)


def _explain(obj: dict[str, Any], cls: type) -> str:
    """Why `obj` does not structure as `cls`, by path: the slow path, for failures only."""
    try:
        _EXPLAINER.structure(obj, cls)
    except Exception as exc:  # noqa: BLE001
        return _reason(exc)
    return "$: not decodable"


def decode_rest(route: str, data: bytes, *, response: bool = False) -> Model | Undecodable:
    """Decode a REST JSON body for a route key of `REST_BODIES`. Never raises."""
    classes = REST_BODIES.get(route)
    if classes is None:
        return Undecodable(reason=f"no model for route {route!r}"[:80], size=len(data))
    obj, reason = _parse(data)
    if obj is None:
        return Undecodable(reason=reason, size=len(data))
    cls = classes[1] if response else classes[0]
    try:
        result: Model = CONVERTER.structure(obj, cls)
    except Exception:  # noqa: BLE001
        return Undecodable(reason=_explain(obj, cls), size=len(data))
    return result


def unstructure(model: Model) -> dict[str, Any]:
    """The JSON object a decoded model came from (equal to the parsed frame)."""
    if isinstance(model, UnknownEvent):
        return {"type": model.type, **model.extra}
    out: dict[str, Any] = CONVERTER.unstructure(model, model.__class__)
    return out
