ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core ./core
COPY bot ./bot
COPY tools ./tools
COPY emulator ./emulator
COPY services_bot ./services_bot
RUN pip install . && useradd --create-home --uid 10001 bot && mkdir /data && chown bot /data
USER bot
VOLUME ["/data"]
ENV SERVICES_BOT_DB=/data/services-bot.db
ENTRYPOINT ["services-bot"]
CMD ["--help"]
