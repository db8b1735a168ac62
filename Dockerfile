FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY infrastructure ./infrastructure
COPY api ./api
COPY seeds ./seeds
RUN pip install --no-cache-dir .
EXPOSE 8000
# Migrations first (alembic owns every table), then the seeds (idempotent), then serve.
CMD ["sh", "-c", "dateline migrate && dateline seed && dateline serve --host 0.0.0.0 --port 8000"]
