"""
Pricing: what a response's `usage` cost, in USD, from a dated price table.

The table ships with earshot (`proxy/data/prices.yaml`, with its source and date) and the
config's `pricing:` section adds or replaces models. A model is matched by its exact
name, else without a dated snapshot's date (`gpt-realtime-2025-08-28` takes
`gpt-realtime`'s prices, not `gpt-realtime-2`'s), else by the longest name that prefixes
it; an entry of `null` means the model has no price. A cost counts every kind of token
once: `input_tokens` already includes the cached ones, which are billed at the cached
price and not again at the full one (SPEC §4a). Usage of `type: duration` is billed per
minute of audio (`per_minute`), and a provider that bills the connection's time (xAI's
voice API) per minute of session (`per_session_minute`, priced at `ws.close`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

import attrs
import yaml

PRICE_KINDS: Final = (
    "text_input",
    "cached_text_input",
    "audio_input",
    "cached_audio_input",
    "image_input",
    "cached_image_input",
    "text_output",
    "audio_output",
)
"""Each token price a model has, in USD per million tokens (absent: 0)."""

_PER_TOKEN: Final = 1e-6


@attrs.frozen(kw_only=True)
class Prices:
    """One model's prices, USD per million tokens."""

    text_input: float = 0.0
    cached_text_input: float = 0.0
    audio_input: float = 0.0
    cached_audio_input: float = 0.0
    image_input: float = 0.0
    cached_image_input: float = 0.0
    text_output: float = 0.0
    audio_output: float = 0.0
    per_minute: float = 0.0  # USD per minute of audio, for `type: duration` usage
    per_session_minute: float = 0.0  # USD per minute of connection (xAI's voice API)

    @property
    def by_token(self) -> bool:
        """Whether the model has any token price (else token usage is not costed)."""
        return any(getattr(self, kind) for kind in PRICE_KINDS)


_DATED: Final = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@attrs.frozen
class PriceTable:
    """Models and their prices (None: not priced by token), with the table's date."""

    models: Mapping[str, Prices | None]
    date: str
    source: str

    def key(self, model: object) -> str | None:
        """The table's name for `model`: its own, or the longest that prefixes it."""
        if not isinstance(model, str) or not model:
            return None
        if model in self.models:
            return model
        undated = _DATED.sub("", model)
        if undated in self.models:
            return undated
        best = max((k for k in self.models if model.startswith(k)), key=len, default=None)
        return best

    def prices(self, model: object) -> Prices | None:
        """The prices for `model`, or None when it has none."""
        key = self.key(model)
        return self.models[key] if key is not None else None

    def with_overrides(self, overrides: Mapping[str, Prices | None]) -> PriceTable:
        """This table with the config's `pricing:` models added or replacing its own."""
        return attrs.evolve(self, models={**self.models, **overrides})


def shipped_table() -> PriceTable:
    """The price table that ships with earshot."""
    text = resources.files("proxy").joinpath("data/prices.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    models = {
        name: None if entry is None else Prices(**entry) for name, entry in raw["models"].items()
    }
    return PriceTable(models=models, date=str(raw["date"]), source=str(raw["source"]))


def _count(details: object, name: str) -> int:
    value = details.get(name) if isinstance(details, dict) else None
    return value if type(value) is int and value > 0 else 0


def token_counts(usage: object) -> dict[str, int]:
    """A `usage` object's tokens by kind, cached ones apart (what each price applies to):
    `input_text` is the uncached text input, `cached_input_text` the cached, and so on."""
    if not isinstance(usage, dict):
        return {}
    inp = usage.get("input_token_details")
    out = usage.get("output_token_details")
    cached = inp.get("cached_tokens_details") if isinstance(inp, dict) else None
    counts = {}
    for kind in ("text", "audio", "image"):
        total, hit = _count(inp, f"{kind}_tokens"), _count(cached, f"{kind}_tokens")
        counts[f"input_{kind}"] = max(0, total - hit)
        counts[f"cached_input_{kind}"] = min(hit, total) if total else hit
    for kind in ("text", "audio"):
        counts[f"output_{kind}"] = _count(out, f"{kind}_tokens")
    # Usage may give totals without their details (transcription does): those are text.
    if not isinstance(inp, dict):
        counts["input_text"] = _count(usage, "input_tokens")
    if not isinstance(out, dict):
        counts["output_text"] = _count(usage, "output_tokens")
    return counts


_MAX_TOKENS: Final = 10**9  # more tokens than any response has: a peer's error or a lie
_MAX_EXACT: Final = 2**53  # past this a float sum is no longer exact


def usage_problems(usage: object, path: str = "usage", depth: int = 0) -> list[str]:
    """What is wrong with a peer's usage figures before they are summed or priced
    (SPEC §4a): a count that is negative, not an integer, or absurd (over 10^9 tokens, or
    over 2^53 anywhere). An empty list when every figure can be trusted."""
    if not isinstance(usage, dict) or depth > 3:
        return []
    problems = []
    for key, value in usage.items():
        where = f"{path}.{str(key)[:40]}"
        if isinstance(value, dict):
            problems += usage_problems(value, where, depth + 1)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            continue  # `type` and other words: not counts
        elif key == "seconds" and type(value) is float and math.isfinite(value) and value >= 0:
            continue  # duration usage: seconds of audio, a fraction allowed
        elif type(value) is not int:
            problems.append(f"{where}: not an integer")
        elif value < 0:
            problems.append(f"{where}: negative")
        elif value > _MAX_EXACT or (str(key).endswith("tokens") and value > _MAX_TOKENS):
            problems.append(f"{where}: absurd ({value:.3g})")
    return problems[:8]


_PRICE_OF: Final = {
    "input_text": "text_input",
    "cached_input_text": "cached_text_input",
    "input_audio": "audio_input",
    "cached_input_audio": "cached_audio_input",
    "input_image": "image_input",
    "cached_input_image": "cached_image_input",
    "output_text": "text_output",
    "output_audio": "audio_output",
}


def cost(usage: object, prices: Prices | None) -> float | None:
    """What `usage` cost at `prices`, in USD to 9 decimals; None without prices (or,
    for `type: duration` usage, without a price per minute)."""
    if prices is None or not isinstance(usage, dict):
        return None
    if usage.get("type") == "duration":
        seconds = usage.get("seconds")
        if not prices.per_minute or not isinstance(seconds, int | float):
            return None
        return round(seconds / 60 * prices.per_minute, 9)
    if not prices.by_token:
        return None
    counts = token_counts(usage)
    total: float = sum(n * getattr(prices, _PRICE_OF[kind]) for kind, n in counts.items())
    return round(total * _PER_TOKEN, 9)


def describe(table: PriceTable, overrides: Mapping[str, Any]) -> str:
    """One line for `check-config`: the table's date and what the config adds."""
    added = f", {len(overrides)} from the config" if overrides else ""
    return f"# prices: table of {table.date} ({len(table.models)} models{added})"
