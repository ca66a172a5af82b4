"""
Golden records: the demo's scripted session (an API key, an MCP tool with credentials,
2 s of audio, a photo, a spoken answer) through the proxy produces exactly the records in
`tests/data/golden_session.jsonl` — the same lines `docs/logging.md` shows. Set
`EARSHOT_UPDATE_GOLDEN=1` to rewrite the file after an intended change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.demo import DEMO_API_KEY
from tests.conftest import MemorySink, ProxyFactory
from tests.helpers import scripted_session

GOLDEN = Path(__file__).parent / "data" / "golden_session.jsonl"
DOCS = Path(__file__).parent.parent / "docs" / "logging.md"
_VOLATILE = {
    "ts",
    "duration_ms",
    "conn",
    "first_ts",
    "latency_ms",
    "user_wait_ms",
    "first_audio_ms",
    "first_text_ms",
    "response_ms",
    "start_ts",
}
_VOLATILE_HEADERS = {"host", "sec-websocket-key", "user-agent", "date", "content-length"}


def _normalise(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in _VOLATILE}
    for side in ("headers",):
        if side in out:
            out[side] = {k: v for k, v in out[side].items() if k not in _VOLATILE_HEADERS}
    return out


async def _session(make_proxy: ProxyFactory, sink: MemorySink) -> list[bytes]:
    proxy = await make_proxy()
    await scripted_session(proxy, headers={"Authorization": f"Bearer {DEMO_API_KEY}"})
    return [orjson.dumps(_normalise(r)) for r in sink.records()]


async def test_scripted_session_matches_the_golden_records(
    make_proxy: ProxyFactory, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The scripted session's records equal the golden file, line for line.
    """
    monkeypatch.setenv("EARSHOT_FINGERPRINT_KEY", "golden-test-key")
    lines = await _session(make_proxy, sink)

    if os.environ.get("EARSHOT_UPDATE_GOLDEN"):
        GOLDEN.write_bytes(b"\n".join(lines) + b"\n")
    assert GOLDEN.read_bytes().splitlines() == lines


def test_docs_show_the_golden_session() -> None:
    """
    docs/logging.md shows the golden session's records, so the docs stay true.
    """
    docs = DOCS.read_text()

    for line in GOLDEN.read_text().splitlines():
        assert line in docs, line[:120]
