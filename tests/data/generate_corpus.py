"""
Generates `tests/data/corpus/*.jsonl`: realistic events of every type, for every protocol
and direction, with every declared field filled (items and tools in each of their kinds).

Run from the repository root: `python tests/data/generate_corpus.py`. The output is
committed; tests read it and never run this script. Values are realistic in shape (100 ms
of 24 kHz PCM16 sine audio, PNG data URLs, `sk-proj-` style keys) and deterministic.
"""

from __future__ import annotations

import base64
import itertools
import math
import struct
import types
import typing
from pathlib import Path
from typing import Any

import attrs
import orjson

import protocol
from protocol import items as it
from protocol import types as pt

OUT = Path(__file__).parent / "corpus"
PCM = b"".join(
    struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 24000))) for i in range(2400)
)
AUDIO = base64.b64encode(PCM).decode()
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4).decode()

FIELD_VALUES: dict[str, Any] = {
    "event_id": "event_B8aQ3",
    "item_id": "item_C9G8p",
    "previous_item_id": "item_C9G7x",
    "response_id": "resp_C9G8p7",
    "call_id": "call_7f3a",
    "approval_request_id": "mcpr_91",
    "id": "sess_C9G5QPteg4UIbotdKLoYQ",
    "model": "gpt-realtime",
    "name": "get_weather",
    "server_label": "crm",
    "server_url": "https://crm.example.com/mcp?token=tok_live_abc",
    "connector_id": "connector_gmail",
    "role": "user",
    "status": "completed",
    "object": "realtime.item",
    "voice": "marin",
    "speaker": "A",
    "conversation": "auto",
    "detail": "auto",
    "format": "pcm16",
    "input_audio_format": "pcm16",
    "output_audio_format": "pcm16",
    "language": "en",
    "code": "invalid_value",
    "param": "session.voice",
    "obfuscation": "aB3",
    "filename": "id.png",
    "file_id": "file-abc",
    "version": "3",
    "tunnel_id": "tun_1",
    "conversation_id": "conv_C9G8m",
}
INT_VALUES = {"rate": 24000, "sample_rate": 24000, "channels": 1, "status_code": 486}
SECRET = "sk-proj-Zq9xT3BlbkFJ4mN7pR2sV8wY1aB6cD0eF"


def _value(tp: Any, name: str, variant: int) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not pt.Unset and a is not type(None)]
        return _value(args[variant % len(args)], name, variant)
    if origin is list:
        return [_value(typing.get_args(tp)[0], name, variant)]
    if origin is dict:
        return {"X-Api-Key": _value(typing.get_args(tp)[1], name, variant)}
    if tp is pt.Audio:
        return AUDIO
    if tp is pt.Image:
        return f"data:image/png;base64,{PNG}"
    if tp is pt.Secret:
        return SECRET if name != "value" else "ek_68af2b7c1d3e4f5a6b7c8d9e"
    if tp is pt.Url:
        return FIELD_VALUES.get(name, "https://example.com/")
    if tp in pt.TEXT_CLASSES:
        return {
            "instructions": "You are a helpful voice assistant for Acme Bank.",
            "arguments": '{"city": "Paris", "unit": "celsius"}',
            "output": '{"temperature": 21}',
            "event": "5",
            "target_uri": "sip:+14155550123@sip.example.com",
        }.get(name, "My account number is 4111 and my name is Ada Lovelace.")
    if tp is pt.Json:
        return {"type": "server_vad", "threshold": 0.5} if name == "turn_detection" else {}
    if tp is str:
        return FIELD_VALUES.get(name, f"{name}_1")
    if tp is bool:
        return True
    if tp is int:
        return INT_VALUES.get(name, 1200)
    if tp is float:
        return 0.8
    if attrs.has(tp):
        return _object(tp, variant)
    raise TypeError(tp)


def _object(cls: type, variant: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tag = getattr(cls, "TYPE", "")
    if tag:
        out["type"] = tag
    hints = typing.get_type_hints(cls)
    for a in attrs.fields(cls):
        if a.name == "extra":
            continue
        out[a.name] = _value(hints[a.name], a.name, variant)
    return out


def _variants(cls: type) -> list[dict[str, Any]]:
    """One event per item or tool kind the event can carry (at least one)."""
    hints = typing.get_type_hints(cls)
    kinds = 1
    for a in attrs.fields(cls):
        text = str(hints[a.name])
        if "MessageItem" in text:
            kinds = max(kinds, len(typing.get_args(it.Item)))
        if a.name in ("session", "response"):
            kinds = max(kinds, 3)
    return [_object(cls, v) for v in range(kinds)]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for proto, direction in itertools.product(("ga", "beta", "translation"), ("client", "server")):
        lines = []
        for cls in protocol.event_classes(proto, direction):  # type: ignore[arg-type]
            lines += [orjson.dumps(e) for e in _variants(cls)]
        (OUT / f"{proto}_{direction}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        print(f"{proto}_{direction}: {len(lines)} events")


if __name__ == "__main__":
    main()
