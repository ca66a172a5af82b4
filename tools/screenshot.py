"""
The README's picture: runs `earshot demo`, draws its log with `earshot report --html`, and
photographs the page with headless Chromium (Debian's `chromium`: `apt-get install
chromium`). Not part of the test run.

    python tools/screenshot.py            # writes docs/report.png
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Draw the paced demo session into docs/report.png; 0 when written."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.stderr.write("needs Debian's chromium: apt-get install chromium\n")
        return 2
    out = ROOT / "docs" / "report.png"
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "demo.jsonl"
        page = Path(tmp) / "report.html"
        with log.open("wb") as f:
            subprocess.run(
                [sys.executable, "-m", "proxy", "demo", "--timeline"],
                stdout=f,
                stderr=subprocess.DEVNULL,
                check=True,
                cwd=ROOT,
            )
        subprocess.run(
            [sys.executable, "-m", "proxy", "report", "--html", str(page), str(log)],
            stdout=subprocess.DEVNULL,
            check=True,
            cwd=ROOT,
        )
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={tmp}/profile",
                "--window-size=1400,760",
                f"--screenshot={out}",
                page.as_uri(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
