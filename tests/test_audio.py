"""
Audio arithmetic: decoded lengths and durations from base64 lengths and format names.
"""

from __future__ import annotations

import base64

import pytest

from proxy.audio import base64_length, bytes_per_ms


@pytest.mark.parametrize(
    ("value", "length"), [("", 0), ("AA==", 1), ("AAA=", 2), ("AAAA", 3), ("AAAAAAAA", 6)]
)
def test_base64_length_is_computed_without_decoding(value: str, length: int) -> None:
    """
    The decoded length comes from the base64 length and padding.
    """
    assert length == base64_length(value) == len(base64.b64decode(value))


def test_bytes_per_ms() -> None:
    """
    PCM16 at a rate, G.711 at 8 kHz, and the 24 kHz default.
    """
    assert (48.0, 8.0, 8.0, 32.0, 48.0) == (
        bytes_per_ms("audio/pcm", 24000),
        bytes_per_ms("g711_ulaw"),
        bytes_per_ms("audio/pcma"),
        bytes_per_ms("audio/pcm", 16000),
        bytes_per_ms("pcm16"),
    )
