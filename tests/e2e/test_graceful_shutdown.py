"""SIGTERM under load: the server stops taking requests, finishes and records what is in flight, and exits.

The server runs the image's own command line (the Dockerfile's CMD, only its host and port changed), in
production mode on PostgreSQL. Many clients send decisions, each with its own Idempotency-Key and never
retried. Once the load is steady the test takes the audit chain's advisory lock itself, so that every
decision in flight is stuck in the audit writer, waiting for its turn, when SIGTERM arrives. While they are
stuck the server must already refuse new connections and must not exit; once the lock is released they
must all be recorded and answered 201, and the process must exit cleanly within a bound.

Afterwards the database is read behind the service's back: every 201 has its record (same id, place and
hash), every record was answered 201 (a clean drain leaves nothing recorded unanswered), the chain is 1..N
and `il6 audit verify` finds it intact. Every request that was not answered 201 failed at connection level,
after SIGTERM, and none got any other status.
"""

import asyncio
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import psycopg
import pytest

from app.store.repositories import CHAIN_LOCK
from tests.e2e.conftest import (
    CLEAN_EXIT_CODES,
    UNTHROTTLED,
    UVICORN,
    Backend,
    Server,
    create_key,
    fresh_postgresql_database,
    migrate,
    owner_url,
    production_backend,
    run_il6,
    running_server,
    stored_chain,
)
from tests.factories import assessment_body, subject_id

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 48
WARM_UP_DECISIONS = 150
"""201s before the lock is taken: the load is steady, keep-alive connections are open."""
HOLD_S = 1.5
"""How long in-flight decisions are held at the chain's lock across SIGTERM (under the 5 s statement
timeout, which would turn the wait into 503s)."""
REFUSAL_WAIT_S = 3.0
EXIT_BOUND_S = 10.0
"""From the lock's release (the first moment the requests in flight can finish) to the process's exit."""
MAX_ATTEMPTS = 5000
DEADLINE_S = 120.0


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    """A fresh PostgreSQL database in production mode, its signing key made beforehand, no rate limit."""
    state = tmp_path / "state"
    state.mkdir()
    with fresh_postgresql_database() as url:
        yield replace(production_backend(url, state), extra_environment=UNTHROTTLED)


def image_command(port: int) -> list[str]:
    """The Dockerfile's CMD (exec form) with this virtualenv's uvicorn, on 127.0.0.1:``port``."""
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    command: list[str] = json.loads([line for line in lines if line.startswith("CMD ")][-1][4:])
    assert command[0] == "uvicorn"
    command[0] = str(UVICORN)
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    return command


@dataclass(frozen=True)
class Outcome:
    """One request: its key, when it was sent and answered, and its status or transport error."""

    key: str
    sent_at: float
    answered_at: float
    status: int | None = None
    error: str | None = None
    id: uuid.UUID | None = None
    seq: int | None = None
    hash: str | None = None


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    created: int = 0
    in_flight: int = 0
    warm: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at WARM_UP_DECISIONS 201s."""
    all_waiting: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once every client waits for an answer after the lock was taken."""
    locked_at: float = 0.0
    sigterm_at: float = 0.0
    refused_at: float = 0.0
    released_at: float = 0.0
    exited_at: float = 0.0
    returncode: int | None = None


async def _client(base_url: str, headers: dict[str, str], run: Run, stop: asyncio.Event) -> None:
    """Decisions one after another, each once, until the server refuses the connection after SIGTERM."""
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0) as http:
        while not stop.is_set() and len(run.outcomes) < MAX_ATTEMPTS:
            key = str(uuid.uuid4())
            body = assessment_body(subject=subject_id("GS"))
            sent_at = time.monotonic()
            run.in_flight += 1
            if run.locked_at and run.in_flight == CLIENTS:
                run.all_waiting.set()
            try:
                response = await http.post("/v1/assessments", json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError as error:
                run.outcomes.append(Outcome(key, sent_at, time.monotonic(), error=type(error).__name__))
                if run.sigterm_at:
                    return  # the server has gone away, as it should: this caller would go elsewhere
                continue
            finally:
                run.in_flight -= 1
            answered_at = time.monotonic()
            if response.status_code != 201:
                run.outcomes.append(Outcome(key, sent_at, answered_at, status=response.status_code))
                continue
            run.created += 1
            if run.created >= WARM_UP_DECISIONS:
                run.warm.set()
            audit = response.json()["audit"]
            run.outcomes.append(
                Outcome(
                    key,
                    sent_at,
                    answered_at,
                    status=201,
                    id=uuid.UUID(response.json()["id"]),
                    seq=audit["seq"],
                    hash=audit["hash"],
                )
            )


async def _refused(base_url: str) -> bool:
    """A new connection is refused (what a caller sees from a server that no longer accepts).

    A probe that connects in the instant the listener closes can be taken from the backlog and then closed
    unanswered, as the shutdown closes every connection with no request under way: that is not yet a
    refusal, and the next probe finds out.
    """
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as probe:
        try:
            await probe.get("/healthz")
        except httpx.ConnectError:
            return True
        except (httpx.ReadError, httpx.RemoteProtocolError):
            return False
    return False


async def _drive(server: Server, database_url: str) -> Run:
    run = Run()
    stop = asyncio.Event()
    process = server.process
    started = time.monotonic()

    clients = [
        asyncio.create_task(_client(server.base_url, server.headers, run, stop)) for _ in range(CLIENTS)
    ]
    try:
        async with asyncio.timeout(DEADLINE_S):
            await run.warm.wait()
        # The chain's turn, taken as another process's writer takes it: every decision now waits for it.
        async with await psycopg.AsyncConnection.connect(owner_url(database_url), autocommit=True) as lock:
            await lock.execute("SELECT pg_advisory_lock(%s)", (CHAIN_LOCK,))
            run.locked_at = time.monotonic()
            if run.in_flight == CLIENTS:
                run.all_waiting.set()
            with suppress(TimeoutError):  # every client waiting on an answer (most are, at once)
                async with asyncio.timeout(2.0):
                    await run.all_waiting.wait()
            await asyncio.sleep(0.2)  # and into the audit writer, behind the lock
            process.send_signal(signal.SIGTERM)
            run.sigterm_at = time.monotonic()
            while not await _refused(server.base_url):
                assert time.monotonic() - run.sigterm_at < REFUSAL_WAIT_S, "still accepting after SIGTERM"
                await asyncio.sleep(0.05)
            run.refused_at = time.monotonic()
            assert process.poll() is None, "the server exited with requests in flight"
            await asyncio.sleep(max(0.0, run.sigterm_at + HOLD_S - time.monotonic()))
            assert process.poll() is None, "the server exited with requests in flight"
            await lock.execute("SELECT pg_advisory_unlock(%s)", (CHAIN_LOCK,))
            run.released_at = time.monotonic()
        try:
            run.returncode = await asyncio.to_thread(process.wait, EXIT_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit within {EXIT_BOUND_S:.0f} s of the lock's release\n{server.output()}")
        run.exited_at = time.monotonic()
        assert await _refused(server.base_url)
        assert time.monotonic() - started < DEADLINE_S
    finally:
        stop.set()
        await asyncio.gather(*clients)
    return run


def test_sigterm_under_load_drains_records_and_exits(backend: Backend, workdir: Path, tmp_path: Path) -> None:
    migrate(backend, workdir)
    api_key = create_key(backend, workdir, scopes="assess,read", sites="*")
    with running_server(backend, workdir, tmp_path, api_key, command_for=image_command) as server:
        server.wait_ready()
        run = asyncio.run(_drive(server, backend.database_url))
    rows = stored_chain(backend.database_url)
    verify = run_il6(backend, workdir, "audit", "verify")

    output = server.output()
    created = [outcome for outcome in run.outcomes if outcome.status == 201]
    failed = [outcome for outcome in run.outcomes if outcome.status is None]
    drained = [outcome for outcome in created if outcome.sent_at < run.sigterm_at < outcome.answered_at]
    print(
        f"requests {len(run.outcomes)}, 201s {len(created)} ({len(drained)} in flight at SIGTERM), "
        f"refused at connection level {dict(Counter(outcome.error for outcome in failed))}, records "
        f"{len(rows)}; new connections refused {run.refused_at - run.sigterm_at:.2f} s after SIGTERM, "
        f"exit {run.exited_at - run.sigterm_at:.2f} s after SIGTERM "
        f"({run.exited_at - run.released_at:.2f} s after the lock's release)"
    )

    # A clean exit, by the graceful path (nothing cancelled for want of time).
    assert run.returncode in CLEAN_EXIT_CODES, output
    assert "Application shutdown complete" in output, output
    assert "Finished server process" in output, output
    assert "timeout graceful shutdown exceeded" not in output, output
    assert "Traceback" not in output, output
    assert run.exited_at - run.released_at < EXIT_BOUND_S

    # What was in flight at SIGTERM finished: held at the lock, then recorded and answered.
    assert len(drained) >= CLIENTS // 2, f"only {len(drained)} requests were in flight at SIGTERM"
    # Every other request failed at connection level, after SIGTERM; no other status was given.
    assert {outcome.status for outcome in run.outcomes} <= {201, None}
    assert all(outcome.answered_at >= run.sigterm_at for outcome in failed), failed
    assert {outcome.error for outcome in failed} <= {"ConnectError", "RemoteProtocolError", "ReadError"}
    assert any(outcome.error == "ConnectError" for outcome in failed)

    # Every 201 has its record, every record was answered 201, and the chain holds.
    by_key = {row.idempotency_key: row for row in rows}
    assert set(by_key) == {outcome.key for outcome in created}
    for outcome in created:
        row = by_key[outcome.key]
        assert (row.id, row.seq, row.hash) == (outcome.id, outcome.seq, outcome.hash)
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    assert verify.returncode == 0, f"il6 audit verify: {verify.stdout}{verify.stderr}"
