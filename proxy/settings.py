"""
Settings: the YAML configuration, its validation and its environment overrides.

`load(path)` reads a file, applies `EARSHOT_<SECTION>_<KEY>` environment overrides, and
returns a frozen `Settings`, or raises `ConfigError` listing every problem as
`config.path: problem`. The CLI turns that into exit status 2.
"""

from __future__ import annotations

import math
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import attrs
import yaml
from cattrs import Converter, transform_error
from cattrs.errors import ForbiddenExtraKeysError

from proxy.config_schema import (
    EVENT_MODES,
    TEXT_MODES,
    TEXT_POLICY_KEYS,
    EventMode,
    LimitsSection,
    ListenSection,
    LogSection,
    OtelSection,
    RedactionSection,
    Settings,
    ShutdownSection,
    UpstreamSection,
    check,
)

__all__ = [
    "EVENT_MODES",
    "TEXT_MODES",
    "TEXT_POLICY_KEYS",
    "ConfigError",
    "EventMode",
    "LimitsSection",
    "ListenSection",
    "LogSection",
    "OtelSection",
    "RedactionSection",
    "Settings",
    "ShutdownSection",
    "UpstreamSection",
    "dump",
    "load",
    "parse",
]


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` are `config.path: problem` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _converter() -> Converter:
    conv = Converter(forbid_extra_keys=True, detailed_validation=True)

    def exact(expected: tuple[type, ...], name: str) -> Any:
        # YAML's `true` is not a number and `"80"` is not a port: no coercion.
        def structure(value: object, _: object) -> Any:
            if type(value) in expected:
                return value
            raise ValueError(f"must be {name}")

        return structure

    string = exact((str,), "a string")
    number = exact((int, float), "a number")
    conv.register_structure_hook(str, string)
    conv.register_structure_hook(int, exact((int,), "an integer"))
    conv.register_structure_hook(bool, exact((bool,), "true or false"))

    def finite(value: object, _: object) -> float:
        # `.nan` and `.inf` are YAML floats: a timeout or a price must still be a number.
        out = float(number(value, _))
        if not math.isfinite(out):
            raise ValueError("must be a finite number")
        return out

    conv.register_structure_hook(float, finite)
    conv.register_structure_hook(str | None, lambda v, _: None if v is None else string(v, _))

    def string_list(value: object, _: object) -> list[str]:
        # cattrs would iterate a string into its characters.
        if type(value) is not list:
            raise ValueError("must be a list")
        return [string(v, str) for v in value]

    conv.register_structure_hook_func(lambda t: t == list[str], string_list)

    def literal(type_: Any) -> Any:
        # A word from a fixed set: the value itself (no coercion), else what it may be.
        allowed: tuple[str, ...] = typing.get_args(type_)
        words = [str(a) for a in allowed]
        if len(words) <= 3:
            expected = f"must be {', '.join(words[:-1])} or {words[-1]}"
        else:
            expected = f"must be one of {', '.join(words)}"

        def structure(value: object, _: object) -> Any:
            if type(value) is str and value in allowed:
                return value
            raise ValueError(expected)

        return structure

    conv.register_structure_hook_factory(lambda t: _is_literal(t), literal)
    conv.register_structure_hook(
        str | dict[str, str],
        lambda v, _: v if isinstance(v, str) else conv.structure(v, dict[str, str]),
    )
    return conv


def _is_literal(type_: object) -> bool:
    return typing.get_origin(type_) is typing.Literal


_CONVERTER: Final = _converter()


def _expected(type_: Any) -> str:
    """What a value of `type_` must be, in the words of a config problem."""
    if attrs.has(type_):
        return f"must be a mapping (keys: {', '.join(a.name for a in attrs.fields(type_))})"
    origin = typing.get_origin(type_) or type_
    if origin is dict:
        return "must be a mapping"
    if origin is list:
        return "must be a list"
    return "has the wrong type"


def _format(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"unknown key(s) {', '.join(sorted(exc.extra_fields))}"
    if isinstance(exc, KeyError):
        return "required"
    if isinstance(exc, ValueError | TypeError) and exc.args:
        msg = str(exc.args[0])
        if msg.startswith("must "):
            return msg
    if isinstance(exc, ValueError | TypeError | AttributeError):
        return _expected(type_)
    return "is invalid"


def _yaml_off_is_a_word(raw: dict[str, Any]) -> None:
    """YAML 1.1 reads an unquoted `off` as false; in the event policy it is the mode."""
    log = raw.get("log")
    events = log.get("events") if isinstance(log, dict) else None
    if isinstance(events, dict):
        for key, value in events.items():
            if value is False:
                events[key] = "off"


ENV_PREFIX: Final = "EARSHOT_"


def _env_keys() -> dict[str, tuple[str, attrs.Attribute[Any]]]:
    """`EARSHOT_<SECTION>_<KEY>` → (section, key field), for every key of the config."""
    out = {}
    for section in attrs.fields(Settings):
        section_type = section.type
        if not isinstance(section_type, type) or not attrs.has(section_type):
            continue  # `pricing`: models by name, not single keys
        for key in attrs.fields(section_type):
            out[f"{ENV_PREFIX}{section.name}_{key.name}".upper()] = (section.name, key)
    return out


def _env_value(raw: str, type_: Any) -> Any:
    """An environment variable's value for a key of type `type_`: strings as they are,
    lists comma-separated (or YAML flow syntax), everything else as YAML."""
    if type_ is str or type_ == str | None or typing.get_origin(type_) is Literal:
        return raw
    if typing.get_origin(type_) is list and not raw.lstrip().startswith("["):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return yaml.safe_load(raw)


def _env_overrides(
    raw: dict[str, Any], environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """Apply `EARSHOT_<SECTION>_<KEY>` variables in place; returns problems, and the
    variable behind each overridden `config.section.key`."""
    problems, sources = [], {}
    keys = _env_keys()
    for name in sorted(n for n in environ if n.startswith(ENV_PREFIX)):
        if name not in keys:
            if name not in _named_variables(raw):
                problems.append(f"env {name}: matches no config key (EARSHOT_<SECTION>_<KEY>)")
            continue
        section, key = keys[name]
        try:
            value = _env_value(environ[name], key.type)
        except yaml.YAMLError:
            problems.append(f"env {name}: not a valid YAML value")
            continue
        sect = raw.setdefault(section, {})
        if not isinstance(sect, dict):
            continue  # reported as the section's own problem
        sect[key.name] = value
        sources[f"config.{section}.{key.name}"] = name
    return problems, sources


def _named_variables(raw: dict[str, Any]) -> set[str]:
    """Variables the config names as holding a key (not config keys themselves)."""
    names = {RedactionSection().fingerprint_key_env}
    for section, key in (("upstream", "api_key_env"), ("redaction", "fingerprint_key_env")):
        sect = raw.get(section)
        if isinstance(sect, dict) and isinstance(sect.get(key), str):
            names.add(sect[key])
    return names


def _from_env(problem: str, sources: dict[str, str]) -> str:
    """A problem with a key set from the environment names the variable."""
    path = problem.partition(": ")[0]
    for key, name in sources.items():
        if path == key or path.startswith((key + ".", key + "[")):
            return f"env {name}: {problem}"
    return problem


def _structure(raw: dict[str, Any]) -> Settings | list[str]:
    """`raw` as `Settings`, or its problems as `config.path: problem` lines."""
    try:
        return _CONVERTER.structure(raw, Settings)
    except Exception as exc:  # noqa: BLE001 (every problem is reported, none raised raw)
        problems = []
        for m in transform_error(exc, path="config", format_exception=_format):
            msg, _, path = m.rpartition(" @ ")
            path = re.sub(r"\['([^']*)'\]", r".\1", path)  # a mapping's key, as YAML shows it
            problems.append(f"{path}: {msg}")
        return problems


def _drop(raw: dict[str, Any], keys: list[str]) -> None:
    """Remove the value at `keys` (a problem's path) from `raw`, where there is one."""
    node: Any = raw
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and keys:
        node.pop(keys[-1], None)


def parse(raw: object, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from parsed YAML (a mapping or None) plus environment overrides."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["config: must be a mapping"])
    problems, sources = _env_overrides(raw, os.environ if environ is None else environ)
    _yaml_off_is_a_word(raw)
    shaped = _structure(raw)
    reported: set[str] = set()
    if isinstance(shaped, list):
        # Every problem at once: the rest of the file is still checked, with the keys of
        # the wrong type or word left at their defaults.
        problems += [_from_env(p, sources) for p in shaped]
        reported = {p.partition(":")[0] for p in shaped}
        for path in reported:
            _drop(raw, path.split(".")[1:])
        shaped = _structure(raw)
        if isinstance(shaped, list):
            raise ConfigError(problems)
    problems += [
        _from_env(p, sources) for p in check(shaped) if p.partition(":")[0] not in reported
    ]
    if problems:
        raise ConfigError(problems)
    return shaped


def load(
    path: str | Path, environ: Mapping[str, str] | None = None, notes: list[str] | None = None
) -> Settings:
    """Read and validate a YAML file; `ConfigError` on any problem. What a user should
    know but is not a problem (an empty file) is appended to `notes`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"config: cannot read {path}: {why}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"config: not valid YAML{_yaml_where(exc)}"]) from None
    if raw is None and notes is not None:
        notes.append(f"config: {path} has no settings: every key takes its default")
    return parse(raw, environ)


def _yaml_where(exc: yaml.YAMLError) -> str:
    """Where and why a YAML file does not parse: line, column and the parser's reason."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None)
    return f"{where}: {problem}" if problem else where


def dump(settings: Settings) -> str:
    """The resolved settings as YAML; secrets are never in them (keys come from env)."""
    raw = _CONVERTER.unstructure(settings)
    if raw["redaction"]["patterns"]:
        raw["redaction"]["patterns"] = [f"<{len(raw['redaction']['patterns'])} patterns>"]
    return yaml.safe_dump(raw, sort_keys=False)
