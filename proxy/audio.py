"""
Audio arithmetic: how many bytes a base64 string decodes to, and how many bytes a
millisecond of audio takes in a session's format — both from lengths and format names
alone, never by decoding the audio.
"""

from __future__ import annotations

from typing import Final

PCM16_24K: Final = 48.0
"""Bytes per millisecond of the Realtime API's default format: 16-bit PCM at 24 kHz."""


def bytes_per_ms(fmt: object, rate: object = None) -> float:
    """Bytes per millisecond for a GA format type (and its rate) or a beta format name."""
    if fmt in ("audio/pcmu", "audio/pcma", "g711_ulaw", "g711_alaw"):
        return 8.0
    if isinstance(rate, int) and not isinstance(rate, bool) and 1000 <= rate <= 384_000:
        return rate * 2 / 1000
    return PCM16_24K


def base64_length(value: str) -> int:
    """Decoded length of a base64 string, from its length alone."""
    n = len(value)
    if not value.endswith("="):  # the common case, per audio frame: no padding
        return n * 3 // 4
    return max(0, n * 3 // 4 - (2 if value.endswith("==") else 1))
