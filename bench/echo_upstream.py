"""
The benchmark's upstream: a Realtime-shaped echo. For every client frame it answers one
server frame of the matching kind and size, carrying the client's `event_id` (a server
event's own id) so the driver can time the round trip; all deltas belong to one item,
as a real response's do:

- `input_audio_buffer.append` of ≥ 512 base64 characters → `response.output_audio.delta`
  of the same audio
- a shorter append, or anything else → `response.output_text.delta` with a short delta
- an append of exactly 256 base64 characters (4 ms) → a text delta that names a *new*
  item (`item_<event_id>`) every time: the benchmark's `newitem` kind, where each delta
  starts a summary and an item of its own

It greets each session with `session.created`. One process, uvloop.

    python bench/echo_upstream.py --port 9100
"""

from __future__ import annotations

import argparse
from typing import Any

from aiohttp import WSMsgType, web

_CREATED = b'{"type":"session.created","event_id":"event_0","session":{"id":"sess_bench","type":"realtime","model":"gpt-realtime"}}'
_ID = b'"event_id":"'
_AUDIO = b'"audio":"'


def reply(frame: bytes) -> bytes:
    start = frame.find(_ID) + len(_ID)
    event_id = frame[start : frame.find(b'"', start)]
    audio_at = frame.find(_AUDIO)
    audio = frame[audio_at + len(_AUDIO) : frame.rfind(b'"')] if audio_at >= 0 else b""
    if len(audio) >= 512:
        return (
            b'{"type":"response.output_audio.delta","event_id":"'
            + event_id
            + b'","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"'
            + audio
            + b'"}'
        )
    item = b"item_" + event_id if len(audio) == 256 else b"item_1"
    return (
        b'{"type":"response.output_text.delta","event_id":"'
        + event_id
        + b'","response_id":"resp_1","item_id":"'
        + item
        + b'","output_index":0,"content_index":0,"delta":"Sure, "}'
    )


async def echo(request: web.Request) -> web.WebSocketResponse[Any]:
    ws: web.WebSocketResponse[Any] = web.WebSocketResponse(max_msg_size=0, decode_text=False)
    await ws.prepare(request)
    await ws.send_frame(_CREATED, WSMsgType.TEXT)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_frame(reply(msg.data), WSMsgType.TEXT)
    return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
