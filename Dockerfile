# syntax=docker/dockerfile:1
# earshot: a logging and redaction proxy for OpenAI Realtime traffic.
#
# BASE is any image with Python >= 3.11 as `python3` and its venv module: the official
# python image by default, or a Debian base made from packages (tools/build_image.py).
ARG BASE=python:3.11-slim

# --- build: wheels for the locked dependencies and for earshot itself ----------------
FROM ${BASE} AS build
WORKDIR /src
# A C compiler (and Python's headers where the base lacks them) for the compiled build;
# only this stage has them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && (python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || apt-get install -y --no-install-recommends python3-dev) \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/build
# Dependencies first, in their own layer: it changes only when the lock file does.
COPY requirements.lock ./
RUN /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.lock
# The compiled build (setup.py): mypy as the tests lock it, with the dependencies it
# type-checks against, setuptools that reads the project's metadata, and no build
# isolation (so that this mypy and these dependencies are the ones used).
COPY requirements-test.lock ./
RUN /opt/build/bin/pip install --no-cache-dir --no-index --find-links /wheels -r requirements.lock \
    && /opt/build/bin/pip install --no-cache-dir "setuptools>=77" \
        $(grep -E '^(mypy|mypy-extensions|typing-extensions|pathspec|librt|types-pyyaml|types-regex)==' requirements-test.lock)
COPY pyproject.toml setup.py README.md ./
COPY protocol ./protocol
COPY proxy ./proxy
RUN WITH_MYPYC=1 /opt/build/bin/pip wheel --no-cache-dir --no-build-isolation --no-deps \
        --wheel-dir /wheels .

# --- runtime ---------------------------------------------------------------------------
FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/earshot/bin:$PATH \
    EARSHOT_LISTEN_HOST=0.0.0.0
COPY --from=build /wheels /wheels
RUN python3 -m venv /opt/earshot \
    && /opt/earshot/bin/pip install --no-cache-dir --no-index --find-links /wheels earshot \
    && rm -rf /wheels \
    && groupadd --gid 10001 earshot \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin earshot
WORKDIR /app
COPY config ./config
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python3", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["earshot"]
CMD ["--config", "/app/config/default.yaml"]
