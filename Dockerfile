# Dateline's HTTP API. `docker compose up` runs it beside PostgreSQL 16.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The locked, hashed dependencies first: this layer is rebuilt only when they change.
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

COPY pyproject.toml README.md ./
COPY domain ./domain
COPY infrastructure ./infrastructure
COPY api ./api
COPY seeds ./seeds
RUN pip install --no-cache-dir --no-deps . && rm -rf build *.egg-info
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

# Not root. /data is its working directory (the SQLite file when no
# DATELINE_DATABASE_URL is set); the code in /app stays read-only to it.
RUN useradd --system --uid 10001 --home-dir /data --create-home dateline
USER dateline
WORKDIR /data

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"
CMD ["docker-entrypoint.sh"]
