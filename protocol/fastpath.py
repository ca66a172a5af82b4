"""
The generated hot path: a model's structure hook as one straight-line function.

cattrs' generated hook calls a hook per field and builds a keyword dict; the function
generated here checks the scalar fields (strings and their sensitivity types, ints, floats,
bools, opaque JSON) inline and calls hooks only for nested models, lists and maps, then
fills the instance's slots directly. It accepts exactly what the detailed converter
accepts (the tests hold the two to that); on failure it raises, and `decode` asks the
detailed converter for the path. Generated from our own models only, at import.
"""

from __future__ import annotations

import linecache
import typing
from collections.abc import Callable
from typing import Any, Final, Union

import attrs
from cattrs import Converter

from protocol.base import Model
from protocol.shapes import is_union, json_type, runtime_class
from protocol.types import UNSET, Json, Unset

_SCALAR_TESTS: Final = {
    str: "type({v}) is not str",
    int: "type({v}) is not int",
    bool: "type({v}) is not bool",
    float: "type({v}) is not float and type({v}) is not int",
}


def _mismatch(expected: str, value: object) -> TypeError:
    return TypeError(f"expected {expected}, got {json_type(value)}")


def structure_fn(cls: type[Model], conv: Converter) -> Callable[[object, object], Any]:
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
        "_json_type": json_type,
        "new": object.__new__,
    }
    lines = [
        "def structure(o, _):",
        "    if type(o) is not dict:",
        "        raise TypeError(f'expected object, got {json_type(o)}')",
        "    g = o.get",
        # A `type` key the model does not declare is its tag: known, not kept.
        "    n = 0" if "type" in names else "    n = 1 if 'type' in o else 0",
    ]
    for i, a in enumerate(fields):
        t = hints[a.name]
        members = typing.get_args(t) if is_union(t) else (t,)
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
        scalar = runtime_class(inner) if len(rest) == 1 else None
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
