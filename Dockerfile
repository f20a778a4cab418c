# The IL6 eligibility service: one image for both the API (default CMD) and its migrations (`il6 db upgrade`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /srv/il6

# Dependencies first, from the exact pinned set: this layer is rebuilt only when requirements.lock changes.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# The project itself, installed editable so that the `il6` console script exists and
# app/store/migrations.py finds alembic.ini two directories above app/store (here: /srv/il6).
COPY pyproject.toml README.md alembic.ini ./
COPY app/ app/
COPY migrations/ migrations/
RUN pip install --no-cache-dir --no-deps -e .

# Run unprivileged. The code stays root-owned and read-only to the service; only ./var (the embedded
# SQLite default, for running the image without PostgreSQL in development) is writable.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin il6 \
    && mkdir -p /srv/il6/var \
    && chown il6:il6 /srv/il6/var
USER il6:il6

EXPOSE 8000

# Liveness only; readiness (database reachable and migrated) is /readyz, checked by the orchestrator.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Exec form: uvicorn is PID 1 and receives SIGTERM directly for a graceful shutdown: it stops accepting,
# lets requests in flight finish (at most 15 s, then cancels them) and runs the lifespan's shutdown, which
# writes what the audit writer holds (docs/operations.md). Kubernetes' grace period allows for all of it.
CMD ["uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--no-access-log", "--no-server-header", "--timeout-graceful-shutdown", "15"]
