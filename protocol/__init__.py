"""
earshot's model of the OpenAI Realtime protocol: attrs classes for every event, item,
session and REST body, one strict cattrs converter, and the sensitivity types that
redaction reads. Pure data: no I/O, no aiohttp, no structlog.
"""

from __future__ import annotations

from protocol.base import Direction, Event, Model, Undecodable, UnknownEvent
from protocol.codec import (
    CONVERTER,
    EVENT_SETS,
    EventSet,
    decode,
    decode_rest,
    decoder,
    event_classes,
    unstructure,
)
from protocol.converter import make_converter
from protocol.validate import validate

__all__ = [
    "CONVERTER",
    "Direction",
    "EVENT_SETS",
    "EventSet",
    "Event",
    "Model",
    "Undecodable",
    "UnknownEvent",
    "decode",
    "decode_rest",
    "decoder",
    "event_classes",
    "make_converter",
    "unstructure",
    "validate",
]
