"""
earshot's build. Pure Python by default: `pip install .` needs nothing but Python.

With `WITH_MYPYC=1` (not an `EARSHOT_*` variable: those are the config's), the
per-frame modules (a session's forward path, the recorder,
summaries, the turn tracker, audio arithmetic) are compiled with mypyc into C extensions,
the pure-Python modules staying beside them as the fallback. It needs mypy (with the
stubs `types-PyYAML` and `types-regex`, and the dependencies installed: it type-checks
against them), a C compiler and Python's headers, and setuptools ≥ 77 without build
isolation, so that the mypy in the environment is the one used:

    WITH_MYPYC=1 python setup.py build_ext --inplace        # a checkout, for the tests
                                                            # (run with PYTHONPATH=$PWD:
                                                            # one shared library sits at
                                                            # the checkout's top)
    WITH_MYPYC=1 pip wheel --no-build-isolation --no-deps .  # a wheel (the Dockerfile)
"""

from __future__ import annotations

import os

from setuptools import setup

COMPILED = [
    "proxy/audio.py",
    "proxy/session_info.py",
    "proxy/summaries.py",
    "proxy/records.py",
    "proxy/turns.py",
    "proxy/session.py",
]


def _extensions() -> list[object]:
    if os.environ.get("WITH_MYPYC") != "1":
        return []
    from mypyc.build import mypycify

    return list(mypycify(COMPILED, opt_level="3"))


setup(ext_modules=_extensions())
