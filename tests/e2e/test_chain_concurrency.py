"""Two server processes append to one audit chain at once: the chain never forks and never skips.

On PostgreSQL every append takes a transaction-scoped advisory lock from reading the chain head until
commit; on SQLite every transaction begins IMMEDIATE. Either way two processes sharing one database must
take turns, so the chain is 1..N without a gap, each record links to the one before, and every receipt a
client was given names the row the database holds.
"""

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    UNTHROTTLED,
    Attempt,
    Backend,
    Receipt,
    create_key,
    fresh_postgresql_database,
    migrate,
    post_until_created,
    production_backend,
    running_server,
    stored_chain,
)
from tests.factories import assessment_body

SERVERS = 2
CLIENTS_PER_SERVER = 16
DECISIONS = 400


@pytest.fixture(params=["postgresql", "sqlite"])
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """One database for both servers: a fresh PostgreSQL database in production mode, or a SQLite file.

    The signing key is made beforehand in both cases, so that both servers sign with the same key.
    """
    state = tmp_path / "state"
    state.mkdir()
    if request.param == "sqlite":
        keyed = production_backend(f"sqlite:///{tmp_path / 'il6.sqlite3'}", state)
        # SQLite cannot be production, and has no logins.
        # 32 clients on two processes queue for one file's write lock: SQLite's busy handler polls rather
        # than queues fairly, so one waiter can lose the race for more than the default 5 s.
        patient = {**UNTHROTTLED, "IL6_DB_CONNECT_TIMEOUT_S": "30"}
        yield replace(keyed, name="sqlite", environment="test", service_login=None, extra_environment=patient)
        return
    with fresh_postgresql_database() as url:
        yield replace(production_backend(url, state), extra_environment=UNTHROTTLED)


async def _drive(base_urls: list[str], headers: dict[str, str]) -> tuple[list[Receipt], list[Attempt]]:
    """DECISIONS logical requests, split evenly between the servers, CLIENTS_PER_SERVER clients each."""
    receipts: list[Receipt] = []
    attempts: list[Attempt] = []
    queues: dict[str, asyncio.Queue[tuple[str, dict[str, Any]]]] = {url: asyncio.Queue() for url in base_urls}
    for index in range(DECISIONS):
        queue = queues[base_urls[index % len(base_urls)]]
        queue.put_nowait((str(uuid.uuid4()), assessment_body(subject=f"CC-{uuid.uuid4().hex[:16]}")))

    async def client(base_url: str) -> None:
        queue = queues[base_url]
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0, headers=headers) as http:
            while not queue.empty():
                key, body = queue.get_nowait()
                receipts.append(await post_until_created(http, body, key, attempts))

    async with asyncio.TaskGroup() as group:
        for base_url in base_urls:
            for _ in range(CLIENTS_PER_SERVER):
                group.create_task(client(base_url))
    return receipts, attempts


def test_two_processes_append_to_one_chain_without_forking(
    shared_backend: Backend, workdir: Path, tmp_path: Path
) -> None:
    migrate(shared_backend, workdir)
    api_key = create_key(shared_backend, workdir)
    with ExitStack() as stack:
        servers = []
        for index in range(SERVERS):
            logs = tmp_path / f"server-{index}"
            logs.mkdir()
            servers.append(stack.enter_context(running_server(shared_backend, workdir, logs, api_key)))
        for server in servers:
            server.wait_ready()
        assert len({server.base_url for server in servers}) == SERVERS

        receipts, attempts = asyncio.run(_drive([server.base_url for server in servers], servers[0].headers))

        with servers[0].client() as client:
            verification = client.get("/v1/audit/verify")
        for server in servers:
            server.stop_cleanly()
    rows = stored_chain(shared_backend.database_url)

    statuses = Counter(attempt.status for attempt in attempts)
    print(f"{shared_backend.name}: attempts by status {dict(statuses)}")
    # Appends wait their turn (the advisory lock; SQLite's write lock, taken at BEGIN IMMEDIATE, within
    # its busy timeout): none conflicts (409) or finds the store locked (503), so none needs a retry.
    assert statuses == {201: DECISIONS}
    assert not any(receipt.replayed for receipt in receipts)
    assert Counter(receipt.base_url for receipt in receipts) == {
        server.base_url: DECISIONS // SERVERS for server in servers
    }

    # 1..N without a gap, each record linked to the one before, no two claiming the same predecessor.
    assert [row.seq for row in rows] == list(range(1, DECISIONS + 1))
    assert len({row.prev_hash for row in rows}) == DECISIONS
    assert len({row.hash for row in rows}) == DECISIONS
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, DECISIONS))

    # The processes took turns on the chain while both ran: in sequence order, the process that appended
    # changes many times, so neither wrote its share alone before the other began. PostgreSQL grants the
    # chain's lock to its waiters in turn. SQLite promises no such thing: a process waiting for its write
    # lock retries after sleeps of up to 100 ms, and one that begins its next transaction at once can keep
    # the lock through all its share (seen once in CI: one change along the chain); there, the checks above
    # and below are what hold.
    writer_by_seq = [receipt.base_url for receipt in sorted(receipts, key=lambda receipt: receipt.seq)]
    turns = sum(1 for before, after in itertools.pairwise(writer_by_seq) if before != after)
    print(f"{shared_backend.name}: the writing process changed {turns} times along the chain")
    if shared_backend.name == "postgresql":
        assert turns >= 10

    # Every receipt names the row the database holds.
    by_seq = {row.seq: row for row in rows}
    assert sorted(receipt.seq for receipt in receipts) == list(range(1, DECISIONS + 1))
    for receipt in receipts:
        row = by_seq[receipt.seq]
        assert (row.id, row.hash, row.prev_hash) == (receipt.id, receipt.hash, receipt.prev_hash)
        assert (row.idempotency_key, row.subject_id) == (receipt.key, receipt.subject_id)

    assert verification.status_code == 200, verification.text
    report = verification.json()
    assert report["intact"] is True, report
    assert report["checked"] == DECISIONS
    assert report["last_seq"] == DECISIONS
    assert report["last_hash"] == rows[-1].hash
