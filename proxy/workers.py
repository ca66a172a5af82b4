"""
Workers: with `listen.workers > 1`, forked processes share the port through
`SO_REUSEPORT`, so a scrape of `/metrics` reaches one of them at random. Each worker also
serves its own metrics on a Unix socket in a private folder the parent made (mode 0700);
the worker a scrape reaches reads its siblings' there and answers with the sum, so one
scrape shows the whole process (`metrics.merge_exposition` says how each family adds up).

Counters never go backwards when a worker dies and its replacement starts from zero: a
worker saves the exposition it last served (`last-<index>.prom`, written whenever it
answers a scrape, so every figure a scrape has shown is in it), the parent folds a dead
worker's into `retired.prom` (counters and histograms only), and every scrape adds that
file in. `retired.prom` also carries the parent's `earshot_workers_restarted_total`.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import attrs
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy.metrics import Metrics, merge_exposition

_SCRAPE_TIMEOUT = 2.0
RETIRED = "retired.prom"


@attrs.frozen
class Siblings:
    """Worker `index` of `count`, whose sockets are in `folder`."""

    folder: Path
    index: int
    count: int

    def socket(self, index: int) -> Path:
        """Where worker `index` serves its own metrics."""
        return self.folder / f"{index}.sock"

    async def serve(self, metrics: Metrics) -> web.AppRunner:
        """Serve this worker's own metrics on its socket; the caller cleans the runner up."""

        async def own(_request: web.Request) -> web.Response:
            body = generate_latest(metrics.registry)
            self.save(body)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", own)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.UnixSite(runner, str(self.socket(self.index))).start()
        return runner

    async def whole(self, own: bytes) -> bytes:
        """This worker's exposition `own` plus every sibling that answers within two
        seconds (one that has exited or hangs is left out: `earshot_workers` says how
        many are in)."""
        self.save(own)
        texts = [own.decode()]
        others = [i for i in range(self.count) if i != self.index]
        answers = await asyncio.gather(*(self._scrape(i) for i in others))
        texts.extend(text for text in answers if text is not None)
        with contextlib.suppress(OSError, UnicodeDecodeError):
            texts.append((self.folder / RETIRED).read_text())
        return merge_exposition(texts)

    def save(self, own: bytes) -> None:
        """Keep the exposition this worker last served, for after its end (see above)."""
        path = self.folder / f"last-{self.index}.prom"
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_bytes(own)
            tmp.replace(path)

    async def _scrape(self, index: int) -> str | None:
        connector = aiohttp.UnixConnector(path=str(self.socket(index)))
        timeout = aiohttp.ClientTimeout(total=_SCRAPE_TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get("http://worker/metrics") as answer:
                    if answer.status == 200:
                        return await answer.text()
        return None
