"""
Serving: the process lifecycle around the app — listen, drain on SIGTERM, exit 0.

A drain turns `/readyz` false and refuses new upgrades, lets open sessions finish for up
to `shutdown.grace_period` seconds, then closes the rest with 1001 (going away), stops
the listener and flushes the log. With `listen.workers > 1`, the parent
(`proxy.supervisor`) forks that many workers that share the port through `SO_REUSEPORT`,
owns the log and restarts a worker that dies; each worker's `/metrics` adds up all of
them (`proxy.workers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
from collections.abc import Callable

from aiohttp import WSCloseCode, web

from proxy import build
from proxy.admission import AdmittingRunner
from proxy.app import healthz, make_app, metrics_endpoint, readyz
from proxy.context import APP
from proxy.log import Logger, LogSink, configure, make_logger, route_library_logging
from proxy.metrics import Metrics
from proxy.redact import Policy, Redactor
from proxy.settings import Settings
from proxy.supervisor import Supervisor
from proxy.workers import Siblings


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover (Windows, or a build without it)
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def drain(app: web.Application, grace_period: float) -> None:
    """Refuse new sessions, wait for open ones, then close them with 1001."""
    state = app[APP]
    state.draining = True
    state.log.info("proxy.draining", sessions=len(state.sessions), grace_period=grace_period)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace_period):
            await state.idle.wait()
    await asyncio.gather(
        *(
            ws.close(code=WSCloseCode.GOING_AWAY, message=b"earshot is shutting down")
            for ws in list(state.sessions)
        ),
        return_exceptions=True,
    )
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await state.idle.wait()


async def serve(
    settings: Settings,
    log: Logger,
    metrics: Metrics,
    *,
    reuse_port: bool = False,
    reopen_log: Callable[[], None] | None = None,
    siblings: Siblings | None = None,
    flush_log: Callable[[], None] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then drain and return. SIGHUP calls `reopen_log`."""
    app = make_app(settings, log, metrics=metrics, siblings=siblings)
    runner = AdmittingRunner.for_settings(
        app, settings.limits, handle_signals=False, access_log=None, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(
        runner, settings.listen.host, settings.listen.port, reuse_port=reuse_port or None
    )
    own_metrics = admin = None
    try:
        await site.start()
        if settings.listen.admin_port:
            admin = await _serve_admin(app, settings, reuse_port=reuse_port)
        if siblings is not None:
            own_metrics = await siblings.serve(metrics)
    except BaseException:
        await runner.cleanup()  # the app's client session, closed: no "Unclosed" noise
        if admin is not None:
            await admin.cleanup()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stopping() -> None:
        # The log first: as a native sidecar earshot is stopped after the app, and the
        # pod's grace may be nearly spent; what is buffered is written before the drain.
        if flush_log is not None:
            flush_log()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping)
    if reopen_log is not None:
        loop.add_signal_handler(signal.SIGHUP, reopen_log)
    log.info(
        "proxy.start",
        listen=f"{settings.listen.host}:{settings.listen.port}",
        upstream=app[APP].redactor.url(settings.upstream.url),
        pid=os.getpid(),
        build=build(),
    )
    await stop.wait()
    await drain(app, settings.shutdown.grace_period)
    await runner.cleanup()
    if admin is not None:
        await admin.cleanup()
    if own_metrics is not None:
        await own_metrics.cleanup()
    log.info("proxy.stop", pid=os.getpid())


async def _serve_admin(
    app: web.Application, settings: Settings, *, reuse_port: bool
) -> web.AppRunner:
    """`/healthz`, `/readyz` and `/metrics` on `listen.admin_port`: a listener of their
    own, outside traffic admission, so that probes answer while traffic is refused."""
    admin = web.Application()
    admin[APP] = app[APP]
    admin.router.add_get("/healthz", healthz)
    admin.router.add_get("/readyz", readyz)
    admin.router.add_get("/metrics", metrics_endpoint)
    runner = web.AppRunner(admin, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(
        runner, settings.listen.host, settings.listen.admin_port, reuse_port=reuse_port or None
    )
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def _raise_fd_limit() -> None:
    """Two sockets per session: lift the soft open-files limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(settings: Settings) -> int:
    """The `earshot` command: serve in this process or in forked workers."""
    _raise_fd_limit()
    if settings.listen.workers > 1:
        return Supervisor(settings, _run_worker).run()
    return _run_one(settings, reuse_port=False)


def _run_worker(settings: Settings, siblings: Siblings, log_fd: int) -> int:
    """One worker: serves the shared port; its records go to the parent through `log_fd`."""
    return _run_one(settings, reuse_port=True, siblings=siblings, log_fd=log_fd)


def _run_one(
    settings: Settings,
    *,
    reuse_port: bool,
    siblings: Siblings | None = None,
    log_fd: int | None = None,
) -> int:
    metrics = Metrics()
    try:
        sink = LogSink(
            settings.log.output,
            capacity=settings.log.buffer_records,
            block=settings.log.on_full == "block",
            on_written=metrics.written,
            on_dropped=metrics.dropped,
            fd=log_fd,
        )
    except OSError as exc:  # checked at load too; the file system may have changed since
        sys.stderr.write(f"config.log.output: cannot open {settings.log.output}: {exc.strerror}\n")
        return 2
    configure(sink, settings.log.level)
    log = make_logger(sink, settings.log.level)
    route_library_logging(log, Redactor(Policy()).scrub_text)
    _install_uvloop()
    try:
        asyncio.run(
            serve(
                settings,
                log,
                metrics,
                reuse_port=reuse_port,
                reopen_log=sink.reopen,
                siblings=siblings,
                flush_log=sink.flush_soon,
            )
        )
    except OSError as exc:
        log.error("proxy.failed", error=type(exc).__name__, errno=exc.errno)
        sys.stderr.write(
            f"earshot: cannot listen on {settings.listen.host}:{settings.listen.port}:"
            f" {os.strerror(exc.errno) if exc.errno else exc.strerror}\n"
        )
        return 1
    finally:
        sink.close()
    return 0
