"""
Shapes: what a JSON value is, and what a declared type is made of.

Small, shared answers for the converter (`protocol.converter`) and the generated hot path
(`protocol.fastpath`): a JSON value's type name for a failure's reason (never its value),
whether a declared type is a union and of what, and the runtime class behind a `NewType`.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Final, Union

from protocol.types import Unset

_JSON_TYPE_NAMES: Final = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    type(None): "null",
    dict: "object",
    list: "array",
}


def json_type(value: object) -> str:
    """The JSON type name of a parsed value (`str`, `null`, `object`, ...)."""
    return _JSON_TYPE_NAMES.get(type(value), "unknown")


def is_union(t: object) -> bool:
    """Whether a declared type is a union (`X | Y` or `Union[X, Y]`)."""
    return typing.get_origin(t) in (Union, types.UnionType)


def split_union(t: object) -> tuple[list[Any], bool]:
    """The members of a union other than `Unset` and `None`, and whether `None` is one."""
    args = typing.get_args(t)
    rest = [a for a in args if a is not Unset and a is not type(None)]
    return rest, type(None) in args


def runtime_class(t: Any) -> type:
    """The class a value of declared type `t` has at run time (a `NewType`'s base)."""
    supertype = getattr(t, "__supertype__", None)
    return runtime_class(supertype) if supertype is not None else typing.get_origin(t) or t
