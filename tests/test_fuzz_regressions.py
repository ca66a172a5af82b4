"""
Every input the fuzzer (`bench/fuzz/fuzz_records.py`) ever flagged, and its seed corpus,
replayed through the same oracle: no internal error, no leaked canary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz_oracle import check

ROOT = Path(__file__).resolve().parent.parent
INPUTS = sorted((ROOT / "tests" / "data" / "fuzz").iterdir()) + sorted(
    (ROOT / "bench" / "fuzz" / "corpus").iterdir()
)


@pytest.mark.parametrize("path", INPUTS, ids=[p.name for p in INPUTS])
def test_fuzz_input_renders_safely(path: Path) -> None:
    """
    The input renders without an internal error and without leaking its canary.
    """
    check(path.read_bytes())
