"""
Pricing: the dated price table, matched by name then by prefix, and the cost of a
response's usage, checked against figures computed by hand.
"""

from __future__ import annotations

import orjson
import pytest

from proxy import cli
from proxy.pricing import Prices, cost, shipped_table, token_counts
from tests.helpers import DATA, recorded_sessions

TABLE = shipped_table()

# A real usage block (community.openai.com/t/1060242): 313 text tokens in, 256 of them
# cached; 476 audio tokens in, 384 cached; 9 text and 23 audio tokens out.
USAGE = {
    "total_tokens": 821,
    "input_tokens": 789,
    "output_tokens": 32,
    "input_token_details": {
        "text_tokens": 313,
        "audio_tokens": 476,
        "cached_tokens": 640,
        "cached_tokens_details": {"text_tokens": 256, "audio_tokens": 384},
    },
    "output_token_details": {"text_tokens": 9, "audio_tokens": 23},
}


def test_cached_tokens_are_billed_once_at_the_cached_price() -> None:
    """
    gpt-realtime, by hand: (313-256) * 4 + 256 * 0.40 + (476-384) * 32 + 384 * 0.40 + 9 * 16 +
    23 * 64 = 5,044 USD per million tokens, so 0.005044 USD.
    """
    assert 0.005044 == cost(USAGE, TABLE.prices("gpt-realtime"))


def test_cached_image_tokens() -> None:
    """
    gpt-realtime-mini with an image, by hand: 100 * 0.60 + (500-200) * 0.80 + 200 * 0.08 +
    50 * 2.40 = 436 per million, so 0.000436 USD.
    """
    usage = {
        "input_token_details": {
            "text_tokens": 100,
            "image_tokens": 500,
            "cached_tokens_details": {"image_tokens": 200},
        },
        "output_token_details": {"text_tokens": 50},
    }

    assert 0.000436 == cost(usage, TABLE.prices("gpt-realtime-mini"))
    assert {"input_image": 300, "cached_input_image": 200} == {
        k: v for k, v in token_counts(usage).items() if "image" in k
    }


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-realtime", "gpt-realtime"),
        ("gpt-realtime-2025-08-28", "gpt-realtime"),
        ("gpt-realtime-mini-2025-12-15", "gpt-realtime-mini"),
        ("gpt-4o-realtime-preview-2024-12-17", "gpt-4o-realtime-preview"),
        ("gpt-4o-mini-realtime-preview-2024-12-17", "gpt-4o-mini-realtime-preview"),
        ("gpt-4o-transcribe", "gpt-4o-transcribe"),
        ("gpt-realtime-whisper", "gpt-realtime-whisper"),
        ("made-up-model", None),
        (None, None),
    ],
)
def test_a_model_is_matched_exactly_then_by_its_longest_prefix(
    model: str | None, key: str | None
) -> None:
    """
    Dated snapshots take their family's prices; a longer family name wins over a shorter
    one (`gpt-realtime-mini-…` is not `gpt-realtime`).
    """
    assert key == TABLE.key(model)


def test_a_model_without_token_prices_costs_null() -> None:
    """
    A model priced by the second (`gpt-realtime-whisper`) or not in the table has no
    cost, rather than a wrong one.
    """
    assert None is cost(USAGE, TABLE.prices("gpt-realtime-whisper"))
    assert None is cost(USAGE, TABLE.prices("made-up-model"))


def test_the_config_adds_and_replaces_models() -> None:
    """
    `pricing:` adds a model and replaces one of the table's.
    """
    table = TABLE.with_overrides(
        {"my-model": Prices(text_output=1_000_000.0), "gpt-realtime": Prices(audio_output=1.0)}
    )

    assert 9.0 == cost(USAGE, table.prices("my-model"))
    assert 0.000023 == cost(USAGE, table.prices("gpt-realtime-2025-08-28"))


def test_the_table_has_a_date_source_and_every_model_the_issue_names() -> None:
    """
    The shipped table is dated, says where its prices come from, and prices the GA,
    mini, preview and transcription models.
    """
    assert TABLE.date == "2026-12-06"
    assert "LiteLLM" in TABLE.source
    for model in (
        "gpt-realtime",
        "gpt-realtime-mini",
        "gpt-4o-realtime-preview",
        "gpt-4o-mini-realtime-preview",
        "gpt-4o-transcribe",
        "gpt-4o-mini-transcribe",
    ):
        assert TABLE.prices(model) is not None, model


def test_every_recorded_response_has_a_cost() -> None:
    """
    The `usage` of every `response.done` in the real recordings prices as gpt-realtime.
    """
    done = [
        orjson.loads(frame)["response"]
        for _, frames in recorded_sessions()
        for direction, frame in frames
        if direction == "server" and b'"response.done"' in frame
    ]

    costs = [cost(r["usage"], TABLE.prices("gpt-realtime")) for r in done]

    assert len(done) == 8
    assert all(c is not None and c > 0 for c in costs), costs


def test_check_config_prints_the_tables_date(capsys: pytest.CaptureFixture[str]) -> None:
    """
    `check-config` says which price table it will use.
    """
    assert 0 == cli.main(["check-config", str(DATA.parent.parent / "config" / "default.yaml")])

    assert "# prices: table of 2026-12-06 (14 models)" in capsys.readouterr().out
