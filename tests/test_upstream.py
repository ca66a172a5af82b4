"""
The upstream: every URL earshot dials is the configured host's, whatever the request
says; hop-by-hop headers stay behind; a key the proxy holds replaces the client's.
"""

from __future__ import annotations

import pytest

from proxy.settings import parse
from proxy.upstream import Upstream
from tests.conftest import MemorySink, ProxyFactory
from tests.fake_upstream import FakeUpstream


def _upstream(url: str = "https://api.example.com/base", **upstream: object) -> Upstream:
    settings = parse({"upstream": {"url": url, **upstream}}, environ={})
    return Upstream(settings, environ={"HELD": "sk-proj-HELDbyTHEproxy0123456789"})


@pytest.mark.parametrize(
    ("raw_path", "query", "websocket", "expected"),
    [
        (
            "/v1/realtime",
            "model=gpt-realtime",
            True,
            "wss://api.example.com/base/v1/realtime?model=gpt-realtime",
        ),
        ("/v1/realtime/calls", "", False, "https://api.example.com/base/v1/realtime/calls"),
        (
            "//evil.example/v1/realtime",
            "",
            True,
            "wss://api.example.com/base//evil.example/v1/realtime",
        ),
        (
            "/v1/realtime",
            "x=http://evil.example",
            False,
            "https://api.example.com/base/v1/realtime?x=http://evil.example",
        ),
    ],
)
def test_the_url_is_always_the_configured_host(
    raw_path: str, query: str, websocket: bool, expected: str
) -> None:
    """
    The request's path and query are appended to the configured base; its scheme follows
    the leg (ws(s) for a WebSocket, http(s) for REST); no part of the request picks the host.
    """
    assert expected == str(_upstream().url(raw_path, query, websocket=websocket))


def test_hop_by_hop_headers_stay_behind_and_the_held_key_replaces_the_clients() -> None:
    """
    Hop-by-hop headers (and those `Connection` names) are not forwarded; with
    `upstream.api_key_env`, the client's `Authorization` and `api-key` are replaced by
    the proxy's key.
    """
    headers = _upstream(api_key_env="HELD").headers(
        [
            ("Host", "evil.example"),
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "1"),
            ("Authorization", "Bearer client"),
            ("api-key", "client"),
            ("OpenAI-Beta", "realtime=v1"),
        ]
    )

    assert {
        "OpenAI-Beta": "realtime=v1",
        "Authorization": "Bearer sk-proj-HELDbyTHEproxy0123456789",
    } == dict(headers)


async def test_proxy_held_key_replaces_client_credentials(
    make_proxy: ProxyFactory, fake: FakeUpstream, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    With `upstream.api_key_env`, the upstream gets the proxy's key, not the client's,
    and a browser's key subprotocol is not passed on.
    """
    monkeypatch.setenv("EARSHOT_TEST_KEY", "sk-proj-HELDbyTHEproxy0123456789")
    proxy = await make_proxy(upstream={"api_key_env": "EARSHOT_TEST_KEY"})

    ws = await proxy.ws_connect(
        "/v1/realtime?model=gpt-realtime",
        headers={"Authorization": "Bearer client-key-0123456789"},
        protocols=("realtime", "openai-insecure-api-key.ek_client0123456789"),
    )
    await ws.receive(timeout=5)
    await ws.close()

    headers = fake.handshakes[0]["headers"]
    assert "Bearer sk-proj-HELDbyTHEproxy0123456789" == headers["Authorization"]
    assert "realtime" == headers["Sec-WebSocket-Protocol"]
    assert "realtime" == ws.protocol
    assert "HELDbyTHEproxy" not in sink.text()
