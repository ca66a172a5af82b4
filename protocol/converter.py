"""
The converter's rules, as cattrs' strategies are written: one `configure_*` function per
concern, each registering its hooks on a converter, and `make_converter` applying them.

The rules are strict where cattrs is lenient by default: scalars must have their exact JSON
type (`123` is not a string, `"false"` is not a bool), arrays and objects must be arrays
and objects. They are lossless where cattrs would drop data: absent keys stay absent
(`UNSET`), `null` stays `None`, undeclared keys go to `extra`. Without detailed validation
the model hooks are the generated straight-line functions of `protocol.fastpath` (the
per-frame path); with it, cattrs' own hooks, which explain a failure by path.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, Union

import attrs
from cattrs import Converter, IterableValidationError
from cattrs.cols import is_mapping, is_sequence
from cattrs.errors import IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.strategies import configure_tagged_union

from protocol.base import Model
from protocol.fastpath import structure_fn
from protocol.items import FlatItem, FlatTool, Item, Tool
from protocol.shapes import is_union, json_type, runtime_class, split_union
from protocol.types import Extras, Json


def _exact(expected: type, name: str) -> Callable[[object, object], Any]:
    def structure(value: object, _: object) -> Any:
        if type(value) is expected:
            return value
        raise TypeError(f"expected {name}, got {json_type(value)}")

    return structure


def _structure_float(value: object, _: object) -> float:
    # JSON has one number type: an integral temperature (`1`) is a valid float.
    if type(value) is float or type(value) is int:
        return value
    raise TypeError(f"expected float, got {json_type(value)}")


def _identity(value: object, _: object = None) -> object:
    return value


def _is_optional_or_mixed(t: object) -> bool:
    """A union this module handles: one with `Unset` or `None`, or a string-or-object.

    Unions of model classes alone are tagged unions, configured by name below.
    """
    if not is_union(t):
        return False
    rest, nullable = split_union(t)
    return nullable or len(rest) < len(typing.get_args(t)) or not all(attrs.has(r) for r in rest)


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


def configure_scalars(conv: Converter) -> None:
    """Strings, ints, bools and floats of their exact JSON type; opaque JSON as it is."""
    conv.register_structure_hook(str, _exact(str, "str"))
    conv.register_structure_hook(int, _exact(int, "int"))
    conv.register_structure_hook(bool, _exact(bool, "bool"))
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(Json, _identity)
    conv.register_unstructure_hook(Json, _identity)
    conv.register_structure_hook(Extras, _identity)
    conv.register_unstructure_hook(Extras, _identity)


def configure_collections(conv: Converter) -> None:
    """Arrays and objects must be arrays and objects; a failing item names its index."""

    def list_structure(t: Any) -> Callable[[object, object], Any]:
        inner = conv.get_structure_hook(typing.get_args(t)[0])
        item_type = typing.get_args(t)[0]

        def structure(value: object, _: object) -> list[Any]:
            if type(value) is not list:
                raise TypeError(f"expected array, got {json_type(value)}")
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
                raise TypeError(f"expected object, got {json_type(value)}")
            return {k: inner(v, value_type) for k, v in value.items()}

        return structure

    conv.register_structure_hook_factory(is_sequence, list_structure)
    conv.register_structure_hook_factory(is_mapping, dict_structure)


def configure_unions(conv: Converter) -> None:
    """Optional fields (`UNSET`, `None`), and a string-or-object (prompt variables)."""

    def union_structure(t: Any) -> Callable[[object, object], Any]:
        rest, nullable = split_union(t)
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
        rest, _ = split_union(t)
        if len(rest) == 1:
            inner = conv.get_unstructure_hook(rest[0])
        else:
            by_class = {runtime_class(r): conv.get_unstructure_hook(r) for r in rest}

            def inner(value: Any) -> Any:
                hook = by_class.get(value.__class__)
                return hook(value) if hook else conv.unstructure(value, value.__class__)

        return lambda value: None if value is None else inner(value)

    conv.register_structure_hook_factory(_is_optional_or_mixed, union_structure)
    conv.register_unstructure_hook_factory(_is_optional_or_mixed, union_unstructure)


def configure_models(conv: Converter, *, detailed_validation: bool) -> None:
    """Every `Model`: declared fields by their hooks, undeclared keys kept in `extra`;
    the wire tag first when unstructured."""

    def model_structure(cls: type[Model]) -> Callable[[object, object], Any]:
        if not detailed_validation:
            return structure_fn(cls, conv)
        base = make_dict_structure_fn(cls, conv, extra=override(omit=True))
        known = frozenset(a.name for a in attrs.fields(cls)) | {"type"}

        def structure(value: object, _: object) -> Model:
            if type(value) is not dict:
                raise TypeError(f"expected object, got {json_type(value)}")
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


def configure_tagged_unions(conv: Converter) -> None:
    """Items and tools, tagged on `type`; an unknown or missing tag decodes flat."""
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


def make_converter(*, detailed_validation: bool = False) -> Converter:
    """A strict, lossless converter for every protocol model.

    Without detailed validation the generated code is leaner; `decode` uses it and, only
    when a frame fails, structures it again with detailed validation to name the path.
    """
    conv = Converter(detailed_validation=detailed_validation)
    configure_scalars(conv)
    configure_collections(conv)
    configure_unions(conv)
    configure_models(conv, detailed_validation=detailed_validation)
    configure_tagged_unions(conv)
    return conv
