"""
An atheris fuzz target for the per-frame path: decode → redact → render.

Byte 0 of an input chooses direction, protocol and policy; the rest is a frame template
whose `CANARY` and `AUDIOB64` placeholders become a secret-shaped canary and a base64
blob (so mutations keep putting secrets and audio where the models expect them). The
oracle (`tests/fuzz_oracle.py`) fails on an internal error or a leaked canary. Inputs
it flags are saved by libFuzzer as `crash-*` files; copy them to `tests/data/fuzz/` and
they become regression tests (`tests/test_fuzz_regressions.py`).

    pip install atheris
    mkdir -p /tmp/fuzz && cp bench/fuzz/corpus/* /tmp/fuzz/
    python bench/fuzz/fuzz_records.py /tmp/fuzz -max_total_time=600 -max_len=8192
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz_oracle import check


def main() -> None:
    # Instrument everything already imported: the editable install's import hook hides
    # our packages from `instrument_imports`.
    atheris.instrument_all()
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
