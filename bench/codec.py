"""
Micro-benchmarks of the per-frame path, measured in one run beside `orjson.loads` of the
same bytes (the floor): decode alone (issue 2), and decode + redact + render of a full
record, or decode + fold into a summary (issue 3).

    python bench/codec.py            # prints a table; --json writes bench/results/codec.json

Each figure is the median of `--repeats` timings of `--number` calls, in microseconds.
Not a test: the machines are shared and noisy, so read the ratios.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import protocol
from proxy.log import MemorySink, make_logger
from proxy.pricing import shipped_table
from proxy.records import EventPolicy, Recorder
from proxy.redact import Policy, Redactor
from proxy.session import Session
from proxy.turns import TurnTracker

PCM_100MS = bytes(range(256)) * 18 + bytes(192)  # 4800 bytes: 100 ms of 24 kHz PCM16
APPEND = orjson.dumps(
    {
        "type": "input_audio_buffer.append",
        "event_id": "event_123",
        "audio": base64.b64encode(PCM_100MS).decode(),
    }
)
TEXT_DELTA = orjson.dumps(
    {
        "type": "response.output_text.delta",
        "event_id": "event_4",
        "response_id": "resp_001",
        "item_id": "item_001",
        "output_index": 0,
        "content_index": 0,
        "delta": "Sure, ",
    }
)
ITEM_CREATE = orjson.dumps(
    {
        "type": "conversation.item.create",
        "event_id": "event_9",
        "item": {
            "type": "message",
            "role": "user",
            "content": [
                {
                    "type": "input_text",
                    "text": "What is my balance? My card is 4111 1111 1111 1111.",
                }
            ],
        },
    }
)
ITEM_DONE = orjson.dumps(
    {
        "type": "response.output_item.done",
        "event_id": "event_10",
        "response_id": "resp_001",
        "output_index": 0,
        "item": {
            "id": "item_001",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_1",
            "name": "get_balance",
            "arguments": '{"account": "checking"}',
        },
    }
)

TOOL_OUTPUT = orjson.dumps(
    {
        "type": "conversation.item.create",
        "event_id": "event_11",
        "item": {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": '{"balance": 1240.17, "currency": "USD", "as_of": "2026-12-01"}',
        },
    }
)


TRACKER = TurnTracker(lambda _record: None, shipped_table())


def _session(recorder: Recorder) -> Session:
    """A session without sockets: what it does with a frame before the send."""
    return Session(recorder, recorder.info)


def _median_us(fn: Callable[[], object], number: int, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        timings.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(timings)


def run(number: int, repeats: int) -> dict[str, dict[str, float]]:
    redactor = Redactor(Policy())
    full = _session(
        Recorder(make_logger(MemorySink(limit=1)), redactor, EventPolicy({"default": "full"}))
    )
    default = _session(
        Recorder(
            make_logger(MemorySink(limit=1)),
            redactor,
            EventPolicy(
                {"default": "full", "input_audio_buffer.append": "summary", "*.delta": "summary"}
            ),
            summary_interval=1e9,
        )
    )
    cases = {
        "input_audio_buffer.append (6.4 KB)": (APPEND, "client", default),
        "response.output_text.delta": (TEXT_DELTA, "server", default),
        "response.output_text.delta (full)": (TEXT_DELTA, "server", full),
        "conversation.item.create": (ITEM_CREATE, "client", full),
        "response.output_item.done": (ITEM_DONE, "server", full),
        "function_call_output (JSON text)": (TOOL_OUTPUT, "client", full),
    }
    out = {}
    for name, (frame, direction, session) in cases.items():
        decoded = protocol.decode(frame, direction)  # type: ignore[arg-type]
        out[name] = {
            "bytes": len(frame),
            "orjson_loads_us": _median_us(lambda f=frame: orjson.loads(f), number, repeats),
            "decode_us": _median_us(
                lambda f=frame, d=direction: protocol.decode(f, d), number, repeats
            ),  # type: ignore[misc]
            "record_us": _median_us(
                lambda f=frame, d=direction, s=session: s.take(d, f), number, repeats
            ),  # type: ignore[misc]
            # What the turn tracker adds to the frame, beside the record (SPEC §4a).
            "turns_us": _median_us(
                lambda e=decoded, d=direction: TRACKER.observe(d, e, 1.0),
                number,
                repeats,
            ),  # type: ignore[misc]
        }
    return out


PII_TEXTS = {
    "text delta, no personal data": "Sure, I can help you with that today.",
    "transcript, 200 B, PII-dense": (
        "My card is 4556 7375 8689 9855, mail me at ann.lee@example.com or call "
        "(415) 555-2671; my social is 123-45-6789 and the IBAN is GB82 WEST 1234 5698 7654 32."
    ),
    "transcript, 200 B, digits but no PII": (
        "The order of 1,240 dollars and 17 cents ships on 2026-12-01 at 10:45 to zip 94107; "
        "version 3.12.1, tracking 1Z999AA10123456784, room 204, floor 12, about 20 minutes."
    ),
}


def run_pii(number: int, repeats: int) -> dict[str, dict[str, float]]:
    """Personal-data masking per kept text: off (all kinds `keep`) against on."""
    on = Redactor(Policy()).personal
    off_policy = Policy(pii=dict.fromkeys(("card", "iban", "email", "phone", "ssn"), "keep"))
    off = Redactor(off_policy).personal
    out = {}
    for name, text in PII_TEXTS.items():
        out[name] = {
            "chars": len(text),
            "off_us": _median_us(lambda t=text: off.mask(t), number, repeats),
            "on_us": _median_us(lambda t=text: on.mask(t), number, repeats),
        }
    frame_on = _session(
        Recorder(
            make_logger(MemorySink(limit=1)),
            Redactor(Policy()),
            EventPolicy({"default": "summary"}),
        )
    )
    frame_off = _session(
        Recorder(
            make_logger(MemorySink(limit=1)),
            Redactor(off_policy),
            EventPolicy({"default": "summary"}),
        )
    )
    out["input_audio_buffer.append (6.4 KB), the frame"] = {
        "chars": len(APPEND),
        "off_us": _median_us(lambda: frame_off.take("client", APPEND), number, repeats),
        "on_us": _median_us(lambda: frame_on.take("client", APPEND), number, repeats),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="also write bench/results/codec.json")
    args = parser.parse_args()
    results = run(args.number, args.repeats)
    print(
        f"{'event':38} {'bytes':>6} {'loads µs':>9} {'decode µs':>10} {'×loads':>7} {'record µs':>10} {'×loads':>7} {'turns µs':>9}"
    )
    for name, r in results.items():
        print(
            f"{name:38} {r['bytes']:6d} {r['orjson_loads_us']:9.2f} {r['decode_us']:10.2f} "
            f"{r['decode_us'] / r['orjson_loads_us']:7.1f} {r['record_us']:10.2f} {r['record_us'] / r['orjson_loads_us']:7.1f} {r['turns_us']:9.2f}"
        )
    print(
        "record = decode + redact + render (full events) or decode + fold into a summary (appends, deltas)"
    )
    print("turns = what the turn tracker adds to the frame (proxy/turns.py), after forwarding")
    print()
    print(f"{'personal data (SPEC §3)':44} {'chars':>6} {'off µs':>8} {'on µs':>8}")
    for name, r in run_pii(args.number, args.repeats).items():
        print(f"{name:44} {r['chars']:6d} {r['off_us']:8.2f} {r['on_us']:8.2f}")
    if args.json:
        path = Path(__file__).parent / "results" / "codec.json"
        meta = {
            "date": time.strftime("%Y-%m-%d"),
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
        path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
        print(f"written to {path}")


if __name__ == "__main__":
    main()
