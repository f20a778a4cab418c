"""The service as separate processes, started the way docker-compose starts it, without Docker.

``il6 db upgrade`` runs first with DATABASE_URL set, then ``uvicorn app.main:create_app --factory`` with the
same environment; the tests talk to it over real HTTP. The scripts come from the running interpreter's
directory (the project's virtualenv), and every process runs from a scratch directory so that nothing
depends on the working directory (as in the container, where alembic.ini is found beside app/).
"""

import asyncio
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import make_url

from tests import log_canary

BIN = Path(sys.executable).parent
IL6 = BIN / "il6"
UVICORN = BIN / "uvicorn"

DEFAULT_POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MIGRATE_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 20.0
KILL_TIMEOUT_S = 10.0
CLEAN_EXIT_CODES = frozenset({0, -signal.SIGTERM})
UNTHROTTLED = {"IL6_RATE_LIMIT_PER_MINUTE": "0"}
"""For load tests: their clients share one key and send faster than a caller's default allowance."""


@dataclass(frozen=True)
class Backend:
    """A database the service is pointed at, and the environment it runs in there."""

    name: str
    database_url: str
    environment: str
    state_dir: Path
    """Holds the audit signing key and the checkpoint log."""
    extra_environment: Mapping[str, str] = field(default_factory=dict, hash=False)
    """More variables for the processes (IL6_* settings, say), set last: they override those above."""
    service_login: str | None = None
    """The login the server connects as, when it is not the URL's (the owner's, which migrates)."""

    @property
    def signing_key_file(self) -> Path:
        return self.state_dir / "audit-signing-key.pem"

    def process_environment(self, *, as_service: bool = True) -> dict[str, str]:
        """The inherited environment without any IL6_* or DATABASE_URL setting, then this backend's, then
        ``extra_environment``. ``as_service``: the server's login; else the URL's own (to migrate)."""
        url = self.database_url
        if as_service and self.service_login is not None:
            url = make_url(url).set(username=self.service_login).render_as_string(hide_password=False)
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("IL6_") and key != "DATABASE_URL"
        }
        return {
            **inherited,
            "DATABASE_URL": url,
            "IL6_ENVIRONMENT": self.environment,
            "IL6_SIGNING_KEY_FILE": str(self.signing_key_file),
            "IL6_CHECKPOINT_FILE": str(self.state_dir / "audit-checkpoints.jsonl"),
            "PYTHONUNBUFFERED": "1",
            **self.extra_environment,
        }


def _admin_url() -> str:
    """The admin URL as libpq understands it (a SQLAlchemy-style ``postgresql+psycopg://`` is accepted)."""
    configured = os.environ.get("TEST_POSTGRES_ADMIN_URL", DEFAULT_POSTGRES_ADMIN_URL)
    return make_url(configured).set(drivername="postgresql").render_as_string(hide_password=False)


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _connect_admin(admin_url: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        reason = str(error)
    # PostgreSQL is a real dependency of these tests: unreachable is a failure, never a skip.
    pytest.fail(
        f"PostgreSQL is required by the e2e tests and is unreachable at {_redacted(admin_url)} "
        f"(set TEST_POSTGRES_ADMIN_URL): {reason}",
        pytrace=False,
    )


@contextmanager
def fresh_postgresql_database() -> Iterator[str]:
    """A new, empty database ``il6_e2e_<hex>``, as a service DATABASE_URL; dropped (WITH FORCE) afterwards."""
    admin_url = _admin_url()
    name = f"il6_e2e_{secrets.token_hex(6)}"
    with _connect_admin(admin_url) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield (
            make_url(admin_url)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with _connect_admin(admin_url) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each supported backend, empty: a SQLite file in tmp_path, or a fresh PostgreSQL database.

    PostgreSQL runs in production mode, with a signing key provisioned beforehand by ``il6 audit keygen``
    (production never creates one); SQLite cannot be production, and creates its key on first start.
    """
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'il6.sqlite3'}", "test", tmp_path)
        return
    with fresh_postgresql_database() as url:
        yield production_backend(url, tmp_path)


SERVICE_LOGIN = "il6_e2e_service"
"""A login that is a member of the audit role and owns nothing, as production requires."""
_SERVICE_LOGIN_SQL = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'il6_app') THEN
        CREATE ROLE il6_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'il6_e2e_service') THEN
        CREATE ROLE il6_e2e_service LOGIN IN ROLE il6_app;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- made at the same moment by another run
END
$$
"""


def production_backend(database_url: str, state_dir: Path) -> Backend:
    """A production-mode backend as an operator sets one up: the audit role and a service login that is
    a member of it and owns nothing (the URL's owner only migrates), and a signing key made beforehand."""
    with _connect_admin(_admin_url()) as admin:
        admin.execute(_SERVICE_LOGIN_SQL)
    backend = Backend("postgresql", database_url, "production", state_dir, service_login=SERVICE_LOGIN)
    keygen = subprocess.run(
        [str(IL6), "audit", "keygen", "--output", str(backend.signing_key_file)],
        capture_output=True,
        text=True,
        timeout=MIGRATE_TIMEOUT_S,
        check=False,
    )
    assert keygen.returncode == 0, keygen.stderr
    return backend


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def run_il6(
    backend: Backend, workdir: Path, *args: str, as_service: bool = True
) -> subprocess.CompletedProcess[str]:
    """The installed ``il6`` command on ``backend`` (as the service's login, or the owner's), from
    ``workdir``; its exit status and output, for the caller to judge."""
    return subprocess.run(
        [str(IL6), *args],
        env=backend.process_environment(as_service=as_service),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=MIGRATE_TIMEOUT_S,
        check=False,
    )


def migrate(backend: Backend, workdir: Path) -> None:
    """``il6 db upgrade``, as the compose ``migrate`` service runs it."""
    result = run_il6(backend, workdir, "db", "upgrade", as_service=False)
    assert result.returncode == 0, (
        f"il6 db upgrade exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def create_key(
    backend: Backend,
    workdir: Path,
    *,
    name: str | None = None,
    scopes: str = "assess,read,admin",
    sites: str = "*",
) -> str:
    """``il6 keys create`` as an operator runs it beside the service (as its login); the printed secret."""
    name = name or f"e2e-{secrets.token_hex(6)}"
    result = run_il6(backend, workdir, "keys", "create", "--name", name, "--scopes", scopes, "--sites", sites)
    assert result.returncode == 0, f"il6 keys create exited with {result.returncode}\n{result.stderr}"
    secret = result.stdout.strip()
    assert secret.startswith("il6_"), "il6 keys create printed no key on standard output"
    return secret


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    """A running ``uvicorn`` process; its stdout and stderr go to files in tmp_path."""

    process: "subprocess.Popen[bytes]"
    base_url: str
    stdout_path: Path
    stderr_path: Path
    api_key: str | None = None
    """Sent as the bearer credential by ``client()`` and ``headers``."""

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.api_key is None else {"Authorization": f"Bearer {self.api_key}"}

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def output(self) -> str:
        stdout = self.stdout_path.read_text(encoding="utf-8", errors="replace")
        return f"--- server stderr ---\n{self.stderr()}\n--- server stdout ---\n{stdout}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0, headers=self.headers)

    def wait_for(
        self, path: str, accept: Callable[[httpx.Response], bool], *, timeout: float = READY_TIMEOUT_S
    ) -> httpx.Response:
        """Poll ``GET path`` until a response is accepted; past ``timeout``, fail with the server output."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    pytest.fail(
                        f"the server exited with {code} before GET {path} answered as expected "
                        f"(last: {last})\n{self.output()}",
                        pytrace=False,
                    )
                try:
                    response = client.get(path)
                except httpx.TransportError as error:
                    last = f"{type(error).__name__}: {error}"
                else:
                    if accept(response):
                        return response
                    last = f"{response.status_code} {response.text}"
                if time.monotonic() >= deadline:
                    pytest.fail(
                        f"GET {path} was not answered as expected within {timeout:.0f} s "
                        f"(last: {last})\n{self.output()}",
                        pytrace=False,
                    )
                time.sleep(0.1)

    def wait_ready(self) -> httpx.Response:
        return self.wait_for("/readyz", lambda response: response.status_code == 200)

    def terminate(self, timeout: float = EXIT_TIMEOUT_S) -> int:
        """SIGTERM, as ``docker stop`` sends it; the return code once the process has exited."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"the server did not exit within {timeout:.0f} s of SIGTERM\n{self.output()}", pytrace=False
            )

    def stop_cleanly(self) -> None:
        """SIGTERM, then require a complete graceful shutdown: lifespan finished, nothing raised.

        Uvicorn (>= 0.29, "cooperative signal handling") shuts down gracefully on SIGTERM and then
        re-raises the signal with its original (default) disposition, so a plain child process reports
        -SIGTERM, not 0. As a container's PID 1 the re-raised signal is ignored and the exit code is 0.
        Both are a clean exit when the log shows the shutdown completed; anything else is not.
        """
        returncode = self.terminate()
        output = self.output()
        assert returncode in CLEAN_EXIT_CODES, f"the server exited with {returncode} on SIGTERM\n{output}"
        assert "Application shutdown complete" in output, output
        assert "Finished server process" in output, output
        assert "Traceback" not in output, output


@contextmanager
def running_server(
    backend: Backend,
    workdir: Path,
    logs: Path,
    api_key: str | None = None,
    *,
    command_for: Callable[[int], list[str]] | None = None,
) -> Iterator[Server]:
    """``uvicorn app.main:create_app --factory`` as the compose ``api`` service runs it (or
    ``command_for(port)``); always stopped. ``api_key``: the credential the server's ``client()`` sends."""
    port = free_port()
    stdout_path = logs / "server.stdout.log"
    stderr_path = logs / "server.stderr.log"
    command = (
        command_for(port)
        if command_for is not None
        else [
            str(UVICORN),
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--no-server-header",
        ]
    )
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            env=backend.process_environment(),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        yield Server(process, base_url, stdout_path, stderr_path, api_key)
    finally:
        try:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=KILL_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
            process.wait(timeout=KILL_TIMEOUT_S)
        finally:
            # The log canary reads what the server wrote, once it has stopped (tests/log_canary.py).
            log_canary.register_server_output(stdout_path, stderr_path, base_url)


# Helpers for the load tests (test_fail_closed.py, test_chain_concurrency.py): logical requests sent with
# an Idempotency-Key and retried until they are recorded, and the chain as the database holds it.

RETRIED_STATUSES = frozenset({409, 503})
"""Answers that record nothing and invite a retry with the same Idempotency-Key and body."""


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt at a logical request; ``status`` is None when the exchange failed in transport."""

    key: str
    status: int | None
    sent_at: float
    answered_at: float
    content_type: str | None = None
    retry_after: str | None = None
    problem_type: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Receipt:
    """A 201 the client saw: the decision's id and its link in the audit chain, as the response gave it."""

    key: str
    subject_id: str
    id: uuid.UUID
    seq: int
    hash: str
    prev_hash: str
    idempotency_key: str | None
    replayed: bool
    sent_at: float
    answered_at: float
    base_url: str


async def post_until_created(
    client: httpx.AsyncClient,
    body: dict[str, object],
    key: str,
    attempts: list[Attempt],
    *,
    backoff_s: float = 0.1,
    give_up_after_s: float = 60.0,
) -> Receipt:
    """POST /v1/assessments with ``key`` until it is answered 201; every attempt is appended to ``attempts``.

    503, 409 and transport errors are retried with the same key and body after ``backoff_s``; any other
    answer fails the test at once. Past ``give_up_after_s`` without a 201 the test fails as well: this
    bounds the wait for a service that does not recover, it measures nothing.
    """
    started = time.monotonic()
    while True:
        sent_at = time.monotonic()
        try:
            response = await client.post("/v1/assessments", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as error:
            attempts.append(Attempt(key, None, sent_at, time.monotonic(), error=type(error).__name__))
        else:
            answered_at = time.monotonic()
            content_type = response.headers.get("content-type")
            problem_type = None
            if content_type is not None and content_type.startswith("application/problem+json"):
                problem_type = response.json().get("type")
            attempts.append(
                Attempt(
                    key,
                    response.status_code,
                    sent_at,
                    answered_at,
                    content_type,
                    response.headers.get("retry-after"),
                    problem_type,
                )
            )
            if response.status_code == 201:
                decision = response.json()
                audit = decision["audit"]
                return Receipt(
                    key=key,
                    subject_id=decision["subject_id"],
                    id=uuid.UUID(decision["id"]),
                    seq=audit["seq"],
                    hash=audit["hash"],
                    prev_hash=audit["prev_hash"],
                    idempotency_key=audit["idempotency_key"],
                    replayed=response.headers.get("idempotent-replayed") == "true",
                    sent_at=sent_at,
                    answered_at=answered_at,
                    base_url=str(client.base_url).rstrip("/"),
                )
            assert response.status_code in RETRIED_STATUSES, (
                f"POST /v1/assessments answered {response.status_code}: {response.text}"
            )
        assert time.monotonic() - started < give_up_after_s, (
            f"no 201 for Idempotency-Key {key} within {give_up_after_s:.0f} s; last attempts: {attempts[-3:]}"
        )
        await asyncio.sleep(backoff_s)


@dataclass(frozen=True)
class StoredLink:
    """A row of the audit trail, read behind the service's back."""

    seq: int
    id: uuid.UUID
    prev_hash: str
    hash: str
    idempotency_key: str | None
    subject_id: str


def owner_url(database_url: str) -> str:
    """A service DATABASE_URL as libpq understands it: the database owner, without the service's role."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


_CHAIN_QUERY = "SELECT seq, id, prev_hash, hash, idempotency_key, subject_id FROM assessment ORDER BY seq"


def stored_chain(database_url: str) -> list[StoredLink]:
    """Every row of the audit trail in sequence order, on either backend."""
    url = make_url(database_url)
    rows: list[tuple[object, ...]]
    if url.get_backend_name() == "sqlite":
        with closing(sqlite3.connect(str(url.database))) as connection:
            rows = connection.execute(_CHAIN_QUERY).fetchall()
    else:
        with psycopg.connect(owner_url(database_url), connect_timeout=5) as connection:
            rows = connection.execute(_CHAIN_QUERY).fetchall()
    return [
        StoredLink(
            seq=int(str(seq)),
            id=uuid.UUID(str(id_)),
            prev_hash=str(prev_hash),
            hash=str(hash_),
            idempotency_key=None if key is None else str(key),
            subject_id=str(subject),
        )
        for seq, id_, prev_hash, hash_, key, subject in rows
    ]
