"""
Settings: what an operator types — YAML files, environment overrides — and what earshot
answers: a problem per line, naming the key (or the variable) and what it must be.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import yaml

from proxy.settings import ConfigError, Settings, load, parse


def _problems(raw: object, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(raw, environ=environ or {})
    return info.value.problems


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ACME", ["ACME"]),
        ("ACME-[0-9]+, internal-\\w+", ["ACME-[0-9]+", "internal-\\w+"]),
        ("['a{1,2}', 'b']", ["a{1,2}", "b"]),
    ],
)
def test_a_list_from_the_environment_is_comma_separated_or_yaml_flow(
    value: str, expected: list[str]
) -> None:
    """
    A list key set from the environment takes a comma-separated value, or YAML flow
    syntax (for items with commas): never a string split into letters.
    """
    settings = parse({}, environ={"EARSHOT_REDACTION_PATTERNS": value})

    assert expected == settings.redaction.patterns


def test_forward_prefixes_from_the_environment() -> None:
    """
    `EARSHOT_UPSTREAM_FORWARD_PREFIXES=/v1/realtime` is one prefix, not 12 errors.
    """
    settings = parse({}, environ={"EARSHOT_UPSTREAM_FORWARD_PREFIXES": "/v1/realtime"})

    assert ["/v1/realtime"] == settings.upstream.forward_prefixes


def test_a_string_key_from_the_environment_is_taken_as_written() -> None:
    """
    A string key is not parsed as YAML: `off` or `123` stay strings.
    """
    settings = parse({}, environ={"EARSHOT_LOG_OUTPUT": "stderr", "EARSHOT_LISTEN_HOST": "::1"})

    assert ("stderr", "::1") == (settings.log.output, settings.listen.host)


def test_a_problem_from_the_environment_names_the_variable() -> None:
    """
    A bad value from an environment variable is reported with the variable's name.
    """
    assert ["env EARSHOT_LISTEN_PORT: config.listen.port: must be an integer"] == _problems(
        {}, {"EARSHOT_LISTEN_PORT": "eighty"}
    )


def test_an_earshot_variable_that_matches_no_key_is_an_error() -> None:
    """
    A misspelt `EARSHOT_*` variable is reported, not silently ignored; the variables the
    config names as holding keys are not config keys and are left alone.
    """
    problems = _problems(
        {"upstream": {"api_key_env": "EARSHOT_HELD_KEY"}},
        {"EARSHOT_LISTEN_PROT": "80", "EARSHOT_HELD_KEY": "k", "EARSHOT_FINGERPRINT_KEY": "f"},
    )

    assert ["env EARSHOT_LISTEN_PROT: matches no config key (EARSHOT_<SECTION>_<KEY>)"] == problems


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            {"upstream": {"url": "https://x.example:notaport"}},
            "config.upstream.url: not a valid URL (its port must be a number 0-65535)",
        ),
        (
            {"listen": 8080},
            "config.listen: must be a mapping (keys: host, port, path_prefix, workers, admin_port)",
        ),
        ({"log": {"events": "full"}}, "config.log.events: must be a mapping"),
        (
            {"upstream": {"forward_prefixes": "/v1"}},
            "config.upstream.forward_prefixes: must be a list",
        ),
        (
            {"log": {"output": "/nonexistent-earshot-dir/earshot.log"}},
            "config.log.output: cannot open /nonexistent-earshot-dir/earshot.log:"
            " no such directory /nonexistent-earshot-dir",
        ),
    ],
)
def test_what_validation_used_to_miss(raw: object, problem: str) -> None:
    """
    Each of these passed validation (or said only "has the wrong type") and failed later.
    """
    assert [problem] == _problems(raw)


def test_a_yaml_syntax_error_gives_line_column_and_reason(tmp_path: Path) -> None:
    """
    A YAML syntax error says where (line and column) and why.
    """
    path = tmp_path / "c.yaml"
    path.write_text("listen: {port: 80\n  host: [")

    with pytest.raises(ConfigError) as info:
        load(path, environ={})

    assert ["config: not valid YAML at line 2, column 7: expected ',' or '}', but got ':'"] == (
        info.value.problems
    )


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_file_is_all_defaults_and_says_so(tmp_path: Path, text: str) -> None:
    """
    An empty file gives the defaults, with a note that it did.
    """
    path = tmp_path / "c.yaml"
    path.write_text(text)
    notes: list[str] = []

    settings = load(path, environ={}, notes=notes)

    assert 8080 == settings.listen.port
    assert [f"config: {path} has no settings: every key takes its default"] == notes


@pytest.mark.parametrize(
    ("pricing", "problem"),
    [
        ({"m": {"text_inptu": 1}}, "config.pricing.m: unknown key(s) text_inptu"),
        ({"m": {"text_input": -1}}, "config.pricing.m.text_input: must be 0 or more"),
        ({"m": {"text_input": "1"}}, "config.pricing.m.text_input: must be a number"),
        ("gpt-realtime", "config.pricing: must be a mapping"),
    ],
)
def test_pricing_is_validated_like_every_other_key(pricing: object, problem: str) -> None:
    """
    `pricing:` models must be mappings of the known prices, each a number, 0 or more.
    """
    assert [problem] == _problems({"pricing": pricing})


def test_pricing_adds_models_and_a_null_model_has_no_price() -> None:
    """
    A model given prices gets them (the rest 0); one given `null` is not priced by token.
    """
    settings = parse({"pricing": {"my-model": {"text_input": 1.5}, "gpt-x": None}}, environ={})

    assert 1.5 == settings.pricing["my-model"].text_input  # type: ignore[union-attr]
    assert None is settings.pricing["gpt-x"]


def _float_keys() -> list[tuple[str, str]]:
    """Every float key of every section: (section, key)."""
    out = []
    for section in attrs.fields(Settings):
        if attrs.has(section.type):
            out += [
                (section.name, f.name)
                for f in attrs.fields(section.type)
                if f.type in (float, "float")
            ]
    return out


@pytest.mark.parametrize(("section", "key"), _float_keys())
@pytest.mark.parametrize("spelling", [".nan", ".inf", "-.inf", ".NaN", ".Inf"])
def test_no_number_in_the_configuration_is_nan_or_infinite(
    section: str, key: str, spelling: str
) -> None:
    """
    `nan` and `inf` are YAML floats, and every timeout, interval and grace period would take
    them (a connection that always fails, a guard switched off, a drain that never ends):
    each is an error naming the key, from the file and from the environment alike.
    """
    value = yaml.safe_load(spelling)
    with pytest.raises(ConfigError) as from_file:
        parse({section: {key: value}}, environ={})
    with pytest.raises(ConfigError) as from_env:
        parse({}, environ={f"EARSHOT_{section.upper()}_{key.upper()}": spelling})

    assert [f"config.{section}.{key}: must be a finite number"] == from_file.value.problems
    assert [
        f"env EARSHOT_{section.upper()}_{key.upper()}: config.{section}.{key}: must be a finite number"
    ] == from_env.value.problems


@pytest.mark.parametrize("spelling", [".nan", ".inf"])
def test_no_price_is_nan_or_infinite(spelling: str) -> None:
    """
    A price of `nan` or `inf` would make every cost `nan` or infinite.
    """
    with pytest.raises(ConfigError) as caught:
        parse({"pricing": {"m": {"text_input": yaml.safe_load(spelling)}}}, environ={})

    assert ["config.pricing.m.text_input: must be a finite number"] == caught.value.problems


@pytest.mark.parametrize(
    "endpoint", ["collector:4318", "grpc://collector:4317", "http://", "ftp://x"]
)
def test_an_otel_endpoint_must_be_an_http_url(endpoint: str) -> None:
    """
    The collector's base URL is http(s) with a host: anything else is an error at start,
    not spans silently lost.
    """
    with pytest.raises(ConfigError) as caught:
        parse({"otel": {"endpoint": endpoint}}, environ={})

    assert [
        "config.otel.endpoint: must be an http(s) URL (the collector's base)"
    ] == caught.value.problems


def test_a_word_outside_its_set_is_one_problem_and_the_rest_is_still_checked() -> None:
    """
    `log.level`, `log.on_full` and an event mode are typed as fixed sets of words: a word
    outside one is one problem naming the set (not also `required`), and the file's other
    problems are reported with it.
    """
    raw = {
        "log": {"level": "loud", "on_full": "wait", "events": {"default": "all"}},
        "listen": {"port": 70000},
    }
    with pytest.raises(ConfigError) as caught:
        parse(raw, environ={})

    assert sorted(caught.value.problems) == [
        "config.listen.port: must be between 0 and 65535",
        "config.log.events.default: must be full, summary or off",
        "config.log.level: must be one of debug, info, warning, error",
        "config.log.on_full: must be drop or block",
    ]
