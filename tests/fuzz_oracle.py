"""
The fuzzing oracle for decode → redact → render, shared by the atheris target
(`bench/fuzz/fuzz_records.py`) and the regression tests (`test_fuzz_regressions.py`).

`check(data)` raises AssertionError when a frame built from `data` makes the recorder
fail internally or leaks a planted canary. Byte 0 of `data` chooses direction, protocol
and event policy; the rest is a frame template in which every `CANARY` becomes a
secret-shaped canary and every `AUDIOB64` a base64 blob.
"""

from __future__ import annotations

import base64
import hashlib

import orjson

import protocol
from proxy.credentials import is_secret_name
from proxy.log import MemorySink, make_logger
from proxy.records import EventPolicy, Recorder
from proxy.redact import Policy, Redactor
from proxy.session_info import SessionInfo
from tests.helpers import take

REDACTOR = Redactor(Policy())
POLICIES = [EventPolicy({"default": "full"}), EventPolicy({"default": "summary"})]


def check(data: bytes) -> None:
    """Render one input; raise AssertionError on a leaked canary.

    Byte 0 chooses direction, protocol and policy; the rest is the frame template.
    """
    if not data:
        return
    flags, template = data[0], data[1:]
    direction = "client" if flags & 1 else "server"
    event_set = protocol.EVENT_SETS[(flags >> 1) % 3]
    policy = POLICIES[(flags >> 3) & 1]
    canary = "Zq" + hashlib.sha256(data).hexdigest()[:20] + "X9"
    audio = base64.b64encode(canary.encode() * 4).decode()
    frame = template.replace(b"CANARY", canary.encode()).replace(b"AUDIOB64", audio.encode())
    sink = MemorySink()
    recorder = Recorder(make_logger(sink), REDACTOR, policy, info=SessionInfo(event_set=event_set))
    take(recorder, direction, frame)  # type: ignore[arg-type]
    recorder.close()
    text = b"".join(sink.lines).decode()
    for line in sink.lines:
        record = orjson.loads(line)
        assert not str(record.get("reason", "")).startswith("internal error"), record["reason"]
        _assert_no_secret_values(record, canary)
    assert f"sk-proj-{canary}" not in text, "secret pattern leaked"
    assert audio[:24] not in text, "audio leaked"


def _assert_no_secret_values(value: object, canary: str) -> None:
    """Under a credential-named key, only a redaction marker may be logged."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if is_secret_name(key) and inner is not None:
                assert canary not in orjson.dumps(inner).decode(), f"canary under {key!r}"
            _assert_no_secret_values(inner, canary)
    elif isinstance(value, list):
        for inner in value:
            _assert_no_secret_values(inner, canary)
