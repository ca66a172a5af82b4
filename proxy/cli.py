"""
The command line: `earshot --config PATH` runs the proxy, `earshot check-config PATH`
validates a file and prints the resolved settings, `earshot demo` runs a scripted
session through the proxy offline and shows its records.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.settings import ConfigError, Settings

# Everything heavier than argparse is imported inside `main`, under its Ctrl-C guard: an
# interrupt while earshot is still importing exits quietly too.

DEFAULT_CONFIG = "config/default.yaml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="earshot",
        description="A logging and redaction proxy for OpenAI Realtime traffic.",
        epilog="Other commands: 'earshot check-config PATH', 'earshot demo',"
        " 'earshot report LOG…'.",
    )
    parser.add_argument(
        "--config", default=None, help=f"YAML config file (default: {DEFAULT_CONFIG} if present)"
    )
    parser.add_argument("--host", default=None, help="listen address (overrides config)")
    parser.add_argument("--port", type=int, default=None, help="listen port (overrides config)")
    return parser


def _load(path: str | None) -> Settings:
    from proxy import settings as settings_module
    from proxy.settings import ConfigError

    notes: list[str] = []
    if path is None:
        try:
            settings = settings_module.load(DEFAULT_CONFIG, notes=notes)
        except ConfigError as exc:
            if exc.problems and exc.problems[0].startswith("config: cannot read"):
                return settings_module.parse({})
            raise
    else:
        settings = settings_module.load(path, notes=notes)
    for note in notes:
        sys.stderr.write(f"{note}\n")
    return settings


def _report(exc: ConfigError) -> int:
    for problem in exc.problems:
        sys.stderr.write(f"{problem}\n")
    return 2


def report(argv: Sequence[str]) -> int:
    """`earshot report LOG…`: each session of earshot logs, and the totals."""
    parser = argparse.ArgumentParser(
        prog="earshot report",
        description="Each session of earshot's JSON-lines logs at a glance, and the totals.",
    )
    parser.add_argument("logs", nargs="+", help="log files, .gz files, or - for stdin")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--conn", help="only this connection id")
    parser.add_argument(
        "--since",
        help="only sessions starting at or after: an RFC 3339 time (any offset) or a"
        " duration back from now (90m, 2h, 1d)",
    )
    parser.add_argument(
        "--turns",
        action="store_true",
        help="list turns instead of sessions, the slowest user wait first",
    )
    parser.add_argument("--limit", type=int, default=50, help="turns listed (with --turns)")
    parser.add_argument("--model", help="only sessions of this model")
    parser.add_argument("--html", metavar="FILE", help="also write a timeline page to FILE")
    args = parser.parse_args(argv)
    from proxy import report as report_module
    from proxy import report_text, timeline

    try:
        filters = report_module.Filters(conn=args.conn, since=args.since, model=args.model)
    except ValueError as exc:
        sys.stderr.write(f"earshot report: {exc}\n")
        return 2
    sections = timeline.Sections() if args.html is not None else None
    try:
        built = report_module.build(
            args.logs,
            filters,
            marker=timeline.mark if sections is not None else None,
            on_closed=sections.add if sections is not None else None,
            turns=max(1, args.limit) if args.turns else 0,
        )
        if args.html is not None and sections is not None:
            with open(args.html, "w", encoding="utf-8") as page:
                timeline.write_html(built, sections, page)
    except OSError as exc:
        sys.stderr.write(f"earshot report: cannot use {exc.filename}: {exc.strerror}\n")
        return 2
    finally:
        if sections is not None:
            sections.close()
    if args.turns and args.json:
        sys.stdout.buffer.write(report_text.turns_json(built))
    elif args.turns:
        sys.stdout.write(report_text.turns_table(built))
    elif args.json:
        sys.stdout.buffer.write(report_text.as_json(built))
    else:
        sys.stdout.write(report_text.table(built))
    return 0


def check_config(argv: Sequence[str]) -> int:
    """`earshot check-config PATH`: validate a file, print the resolved settings (0) or the
    problems (2)."""
    parser = argparse.ArgumentParser(
        prog="earshot check-config", description="Validate a config file."
    )
    parser.add_argument("path")
    args = parser.parse_args(argv)
    from proxy import settings as settings_module
    from proxy.settings import ConfigError

    try:
        settings = _load(args.path)
    except ConfigError as exc:
        return _report(exc)
    from proxy.pricing import describe, shipped_table

    sys.stdout.write(settings_module.dump(settings))
    sys.stdout.write(describe(shipped_table(), settings.pricing) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The `earshot` command. Ctrl-C before the proxy is serving exits quietly (130);
    a reader that stops early (`| head`) ends the output without a traceback."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # What is left for stdout goes nowhere, and Python's exit flush does not fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str]) -> int:
    if argv and argv[0] == "check-config":
        return check_config(argv[1:])
    if argv and argv[0] == "report":
        return report(argv[1:])
    if argv and argv[0] == "demo":
        from proxy import demo
        from proxy.settings import ConfigError

        try:
            return demo.main(argv[1:])
        except ConfigError as exc:  # a bad file or a stray EARSHOT_* variable: as anywhere
            return _report(exc)
    if argv and argv[0] == "run":
        argv = argv[1:]
    args = _parser().parse_args(argv)
    import attrs

    from proxy.settings import ConfigError

    try:
        settings = _load(args.config)
    except ConfigError as exc:
        return _report(exc)
    listen = settings.listen
    if args.host is not None:
        listen = attrs.evolve(listen, host=args.host)
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            sys.stderr.write("--port: must be between 0 and 65535\n")
            return 2
        listen = attrs.evolve(listen, port=args.port)
    settings = attrs.evolve(settings, listen=listen)

    from proxy import server

    return server.run(settings)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
