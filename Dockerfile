# syntax=docker/dockerfile:1
# earshot: a logging and redaction proxy for OpenAI Realtime traffic.

# --- build: wheels for the locked dependencies and for earshot itself ----------------
FROM python:3.11-slim AS build
WORKDIR /src
# Dependencies first, in their own layer: it changes only when the lock file does.
COPY requirements.lock ./
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY protocol ./protocol
COPY proxy ./proxy
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime ---------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EARSHOT_LISTEN_HOST=0.0.0.0
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels earshot \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home earshot
WORKDIR /app
COPY config ./config
USER earshot
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["earshot"]
CMD ["--config", "/app/config/default.yaml"]
