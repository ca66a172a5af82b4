"""
Arize Phoenix for real: run `phoenix serve` on loopback, send the paced demo session
through earshot with `otel.endpoint` pointing at it, check through Phoenix's REST API
that the session's spans arrived (a `realtime.session` with its `realtime.turn`
children), and screenshot its trace view with headless Chromium into docs/phoenix.png.
Not part of the test run: Phoenix weighs about 860 MB installed (`arize-phoenix` and
its dependencies), so it lives in a virtual environment of its own.

    python3 -m venv /tmp/phoenix && /tmp/phoenix/bin/pip install arize-phoenix
    apt-get install chromium
    python tools/phoenix_check.py --phoenix /tmp/phoenix/bin/phoenix
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "earshot-demo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phoenix", default=shutil.which("phoenix") or "phoenix")
    parser.add_argument("--shot", type=Path, default=ROOT / "docs" / "phoenix.png")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not Path(args.phoenix).exists() and shutil.which(args.phoenix) is None:
        print("needs Phoenix: pip install arize-phoenix (see the docstring)", file=sys.stderr)
        return 2
    port, grpc = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port),
               "PHOENIX_GRPC_PORT": str(grpc), "PHOENIX_WORKING_DIR": work}  # fmt: skip
        phoenix = subprocess.Popen(
            [args.phoenix, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(120):
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=2)
                    break
                except OSError:
                    time.sleep(0.5)
            else:
                print("Phoenix did not start", file=sys.stderr)
                return 1
            config = Path(work) / "earshot.yaml"
            config.write_text(f'otel: {{endpoint: "{base}", service_name: {PROJECT}}}\n')
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "proxy", "demo", "--timeline", "--config", str(config)],
                cwd=ROOT, stdout=subprocess.DEVNULL, check=True,
            )  # fmt: skip
            print(f"demo session through earshot: {time.monotonic() - started:.1f} s")
            spans: list[dict[str, object]] = []
            for _ in range(40):
                answer = _get(f"{base}/v1/projects/{PROJECT}/spans?limit=100")
                spans = answer["data"] if isinstance(answer, dict) else []  # type: ignore[assignment]
                if any(s["name"] == "realtime.session" for s in spans):
                    break
                time.sleep(0.5)
            names = sorted(str(s["name"]) for s in spans)
            print(f"Phoenix project {PROJECT!r}: {len(spans)} spans: {', '.join(names)}")
            roots = [s for s in spans if s["name"] == "realtime.session"]
            turns = [s for s in spans if s["name"] == "realtime.turn"]
            ok = (
                len(roots) == 1
                and turns
                and all(
                    t["parent_id"] == roots[0]["context"]["span_id"]
                    for t in turns  # type: ignore[index]
                )
            )
            for span in roots + turns:
                attrs = span["attributes"]
                keys = ("gen_ai.conversation.id", "gen_ai.request.model", "gen_ai.response.id",
                        "earshot.latency_ms", "gen_ai.usage.input_tokens", "earshot.cost_usd",
                        "earshot.turns", "earshot.closed_by")  # fmt: skip
                shown = {k: attrs[k] for k in keys if k in attrs}  # type: ignore[operator,index]
                print(f"  {span['name']}: {shown}")
            print("spans arrived as a session with its turns" if ok else "FAIL: spans missing")
            if chromium and ok:
                project = next(
                    p for p in _get(f"{base}/v1/projects")["data"] if p["name"] == PROJECT
                )  # type: ignore[index]
                trace_id = roots[0]["context"]["trace_id"]  # type: ignore[index]
                url = f"{base}/projects/{project['id']}/traces/{trace_id}"
                subprocess.run(
                    [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", f"--user-data-dir={work}/chromium", "--hide-scrollbars",
                     "--window-size=1500,950", "--virtual-time-budget=15000",
                     f"--screenshot={args.shot}", url],
                    check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                print(f"trace view: {url} -> {args.shot}")
            return 0 if ok else 1
        finally:
            phoenix.terminate()
            phoenix.wait(30)


if __name__ == "__main__":
    sys.exit(main())
