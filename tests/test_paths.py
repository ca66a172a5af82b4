"""
Paths (SPEC §1.6): the path that is checked is the path that is forwarded. A path is
forwarded only in its canonical encoding, so no spelling of the prefix, of a dot segment
or of a separator can make the upstream see another path than the one earshot judged.
"""

from __future__ import annotations

import asyncio
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.settings import Settings
from tests.conftest import ProxyFactory
from tests.fake_upstream import FakeUpstream

PREFIX = "/earshot/x"


async def _raw(proxy: Any, target: str) -> bytes:
    reader, writer = await asyncio.open_connection(proxy.server.host, proxy.server.port)
    writer.write(
        f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    return head


@pytest.mark.parametrize(
    "target",
    [
        "/%65arshot/x/v1/realtime/client_secrets",  # reached the upstream as /x/v1/...
        "/%65%61rshot/x/v1/realtime/client_secrets",  # ... and as ot/x/v1/...
        "/earshot/%78/v1/realtime/client_secrets",
        "/earshot/x/v1/realtime/%63lient_secrets",
        "/earshot/x/v1/realtime/..;/admin",
        "/earshot/x/v1/realtime/calls/..;/..;/admin",
        "/earshot/x/v1/realtime/%c0%ae%c0%ae/admin",  # overlong UTF-8 dots
        "/earshot/x/v1/realtime/%ef%bc%8e%ef%bc%8e/admin",  # fullwidth dots
        "/earshot/x/v1/realtime/%u002e%u002e/admin",
        "/earshot/x/v1/realtime/%2e%2e/admin",
        "/earshot/x/v1/realtime/client_secrets;jsessionid=1",
        "/earshot/x/v1/realtime/%252e%252e/admin",
        "/earshot/x/v1/realtime/%5c..%5cadmin",
    ],
)
async def test_no_spelling_of_the_prefix_or_a_dot_segment_is_forwarded(
    make_proxy: ProxyFactory, fake: FakeUpstream, target: str
) -> None:
    """
    Under `listen.path_prefix: /earshot/x`, a spelling of the prefix that decodes to it,
    path parameters (`..;`), overlong or fullwidth dots and `%u` escapes: 404, nothing
    forwarded.
    """
    proxy = await make_proxy(listen={"path_prefix": PREFIX})
    head = await _raw(proxy, target)

    assert head.startswith(b"HTTP/1.1 404")
    assert [] == fake.requests


async def test_the_canonical_path_is_forwarded_as_it_came(
    make_proxy: ProxyFactory, fake: FakeUpstream
) -> None:
    """
    The plain spelling under the prefix reaches the upstream without the prefix, as sent.
    """
    proxy = await make_proxy(listen={"path_prefix": PREFIX})
    head = await _raw(proxy, f"{PREFIX}/v1/realtime/client_secrets")

    assert head.startswith(b"HTTP/1.1 200")
    assert ["/v1/realtime/client_secrets"] == [r["path"] for r in fake.requests]


SEGMENT = st.sampled_from(
    [
        "v1",
        "realtime",
        "client_secrets",
        "calls",
        "rtc_1",
        "accept",
        "earshot",
        "x",
        ".",
        "..",
        "",
        "admin",
        "..;",
        "%2e",
        "%2E%2e",
        "%252e",
        "%2f",
        "%5c",
        "%00",
        "%c0%ae",
        "%65",
        "%u002e",
        "%ef%bc%8e",
        "a%20b",
        "~u",
        "%7e",
    ]
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    segments=st.lists(SEGMENT, min_size=1, max_size=7),
    spell=st.lists(st.booleans(), min_size=30, max_size=30),
)
async def test_what_reaches_the_upstream_is_the_path_that_was_checked(
    make_proxy: ProxyFactory, fake: FakeUpstream, segments: list[str], spell: list[bool]
) -> None:
    """
    Any path built of real and hostile segments, with some letters percent-encoded: either
    404 and nothing forwarded, or the upstream receives a path that is under a forwarded
    prefix, has no dot or empty segment, and is byte for byte what was sent after the
    prefix.
    """
    proxy = await make_proxy(listen={"path_prefix": PREFIX})
    path = "/" + "/".join(segments)
    # Percent-encode some plain letters: other spellings of the same path.
    spelled = "".join(
        f"%{ord(c):02x}" if c in string.ascii_letters and spell[i % 30] else c
        for i, c in enumerate(path)
    )
    target = PREFIX + spelled
    fake.requests.clear()
    head = await _raw(proxy, target)

    if fake.requests:
        (forwarded,) = [r["path"] for r in fake.requests]
        assert target[len(PREFIX) :] == forwarded
        prefixes = Settings().upstream.forward_prefixes
        assert any(forwarded == p or forwarded.startswith(p + "/") for p in prefixes)
        assert not any(s in ("", ".", "..") for s in forwarded.split("/")[1:-1])
    else:
        assert head.startswith((b"HTTP/1.1 404", b"HTTP/1.1 400"))
