"""
earshot's proxy: the aiohttp application, relay, REST exchange, redaction, logging,
settings and command line. Depends on `protocol`, never the other way round.
"""

from __future__ import annotations


def build() -> str:
    """`mypyc` when the per-frame modules run compiled (`WITH_MYPYC=1` at build time,
    see setup.py), `python` when they run as the pure-Python modules."""
    from proxy import session

    return "python" if session.__file__.endswith(".py") else "mypyc"
