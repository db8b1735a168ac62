#!/bin/sh
# The image's command. Migrate (retrying while PostgreSQL starts, for up to
# DATELINE_MIGRATE_RETRY_SECONDS), load the seeds (idempotent), then `exec` the
# server: it replaces this shell as PID 1, so `docker stop`'s SIGTERM reaches
# uvicorn and the graceful shutdown runs. Any failure before that exits non-zero
# (compose's `restart: on-failure` tries again).
set -eu
dateline migrate
dateline seed
exec dateline serve --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}"
