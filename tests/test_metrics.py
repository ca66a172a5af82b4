"""
Metrics (SPEC §6a): turns, latency, tokens, cost and tool time on `/metrics`, with
bounded labels only.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson

from tests.conftest import ProxyFactory
from tests.fake_upstream import FakeUpstream


def _event(kind: str, **fields: Any) -> bytes:
    return orjson.dumps({"type": kind, **fields})


async def _turn(proxy: Any, fake: FakeUpstream, model: str) -> None:
    ws = await proxy.ws_connect(f"/v1/realtime?model={model}")
    await ws.send_str('{"type":"response.create"}')
    await fake.next_frame()
    usage = {
        "input_token_details": {"text_tokens": 10, "cached_tokens_details": {"text_tokens": 4}},
        "output_token_details": {"audio_tokens": 5},
    }
    for frame in (
        _event("response.created", response={"id": "r1"}),
        _event("response.output_audio.delta", response_id="r1", delta="AAAA"),
        _event("response.done", response={"id": "r1", "status": "completed", "usage": usage}),
    ):
        await fake.send(frame)
    while orjson.loads((await ws.receive(timeout=5)).data)["type"] != "response.done":
        pass
    await ws.close()
    await asyncio.sleep(0.05)


async def test_a_turn_shows_on_metrics(make_proxy: ProxyFactory, fake: FakeUpstream) -> None:
    """
    One client-triggered turn of a priced model: its latency in the histogram, its status,
    its tokens by kind (cached apart) and its cost, labelled by the table's model name.
    """
    fake.greet = fake.scripted = False  # the model is the one the client asked for
    proxy = await make_proxy()

    await _turn(proxy, fake, "gpt-realtime-2025-08-28")
    text = await (await proxy.get("/metrics")).text()

    assert 'earshot_turn_latency_seconds_count{trigger="client"} 1.0' in text
    assert 'earshot_turns_total{status="completed"} 1.0' in text
    assert 'earshot_tokens_total{kind="input_text",model="gpt-realtime"} 6.0' in text
    assert 'earshot_tokens_total{kind="cached_input_text",model="gpt-realtime"} 4.0' in text
    assert 'earshot_tokens_total{kind="output_audio",model="gpt-realtime"} 5.0' in text
    # 6 * 4 + 4 * 0.40 + 5 * 64 = 345.6 per million
    assert 'earshot_cost_usd_total{model="gpt-realtime"} 0.0003456' in text


async def test_made_up_models_add_no_series(make_proxy: ProxyFactory, fake: FakeUpstream) -> None:
    """
    Fifty sessions asking for fifty made-up models are all counted under `other`: a
    client cannot grow the label set.
    """
    fake.greet = fake.scripted = False
    proxy = await make_proxy()

    for i in range(50):
        await _turn(proxy, fake, f"made-up-{i}")
    text = await (await proxy.get("/metrics")).text()

    models = set(re.findall(r'model="([^"]*)"', text))
    assert models == {"other"}
