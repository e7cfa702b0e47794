ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE} AS build
# services-bot: `docker run IMAGE` runs `services-bot serve` (Slack over HTTP or Socket Mode, MCP at /mcp and
# GET /healthz on port 3000). It listens on 0.0.0.0 in the container, so /mcp needs SERVICES_BOT_MCP_TOKEN set
# (a bearer token), or pass `serve --no-mcp`. Other commands: `docker run IMAGE ask failed`, `... emulator`.
#
# Build stage: the package and its dependencies go into a venv at /opt/services-bot; only that venv reaches the
# final image (no sources, no build backend, no pip cache).
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY . .
RUN python -m venv --without-pip /opt/services-bot \
 && python -m pip --python /opt/services-bot/bin/python install --no-cache-dir . \
 && /opt/services-bot/bin/services-bot --help >/dev/null

ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
ENV PATH=/opt/services-bot/bin:$PATH \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    SERVICES_BOT_HOST=0.0.0.0 SERVICES_BOT_PORT=3000 \
    SERVICES_BOT_DB=/data/services-bot.db
RUN groupadd --system --gid 10001 bot \
 && useradd --system --uid 10001 --gid bot --home-dir /data --no-create-home --shell /usr/sbin/nologin bot \
 && mkdir -p /data && chown bot:bot /data \
 && rm -rf /root/.cache /tmp/*
COPY --from=build /opt/services-bot /opt/services-bot
USER bot
WORKDIR /data
# the watcher's SQLite store (and its -wal/-shm files); a named volume keeps it across container restarts
VOLUME ["/data"]
EXPOSE 3000
# no curl in slim images: the stdlib asks /healthz (503 while starting, 200 when ready) on SERVICES_BOT_PORT
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SERVICES_BOT_PORT', '3000'), timeout=4)"]
ENTRYPOINT ["services-bot"]
CMD ["serve"]
