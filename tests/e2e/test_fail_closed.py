"""The audit store drops away under load: the service fails closed, then recovers without a restart.

A TCP proxy sits between the server and PostgreSQL. Midway through a run of logical requests, each with
its own Idempotency-Key and retried with the same key and body until it is answered 201, the proxy cuts
every open connection in both directions and refuses new ones for a few seconds, as a failover would.
The cut is timed to land on a commit boundary: one transaction committed whose acknowledgement never
reaches the service (the other connections are cut wherever they are; the process's one audit writer sends
no other COMMIT while it waits, and the proxy would hold one back from PostgreSQL if it did). No decision
may be given without its record, none may be recorded twice, the chain must stay whole, and the same
server process must decide again once PostgreSQL is reachable.

The second test freezes instead of cutting: the one connection that has just taken the audit chain's lock
goes silent in both directions with its sockets left open, as a half-open network path would.
"""

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from tests.e2e.conftest import (
    UNTHROTTLED,
    Attempt,
    Receipt,
    create_key,
    fresh_postgresql_database,
    migrate,
    owner_url,
    post_until_created,
    production_backend,
    running_server,
    stored_chain,
)
from tests.factories import assessment_body

LOGICAL_REQUESTS = 300
CLIENTS = 16
OUTAGE_S = 3.0
BACKOFF_S = 0.1
PROBLEM_JSON = "application/problem+json"
STORE_UNAVAILABLE = "/problems/audit-store-unavailable"

T = TypeVar("T")


COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"
"""psycopg's COMMIT on the wire: a simple-protocol Query message (type, int32 length, text, NUL)."""


@dataclass
class _Link:
    """One proxied connection: its client side and its PostgreSQL side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    swallow_replies: bool = False
    """Its COMMIT went through: PostgreSQL's acknowledgement is held back from the client."""
    withheld: bool = False
    """Its COMMIT was held back: nothing more goes upstream."""
    frozen: bool = False
    """Silent both ways, its sockets left open: nothing is forwarded, not even either side's close."""

    def abort(self) -> None:
        self.client.transport.abort()
        self.upstream.transport.abort()


@dataclass(frozen=True)
class CutReport:
    connections: int
    """Open connections aborted by the cut."""
    acknowledgement_withheld: bool
    """A COMMIT reached PostgreSQL and was acknowledged, and the client never got the acknowledgement."""
    commits_withheld: int
    """COMMITs the client sent that never reached PostgreSQL."""


class CuttableProxy:
    """Forwards 127.0.0.1:port to PostgreSQL, from its own thread and event loop, and can cut.

    A cut stops listening (new connections are refused) and aborts every open connection on both sides;
    ``resume()`` listens again on the same port. ``cut_at_commit_boundary()`` times the cut so that it
    meets the two moments a random cut rarely hits: one transaction's COMMIT has been carried out by
    PostgreSQL but its acknowledgement is held back from the service, and a later transaction's COMMIT is
    held back from PostgreSQL. The first must come back to the client as its decision, never twice; the
    second must not be answered as a decision at all.

    ``freeze_after(marker)`` makes one connection go silent instead, as a half-open network path does: the
    next chunk the service sends that holds ``marker`` is forwarded, then nothing more on that connection in
    either direction, while both of its sockets stay open (a side that closes is not told to the other).
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cuttable-proxy", daemon=True)
        self._listener: asyncio.Server | None = None
        self._links: dict[asyncio.Task[None], _Link] = {}
        self.port = 0
        self._armed = False
        self._committing: _Link | None = None
        self._acknowledgement_withheld = False
        self._commits_withheld = 0
        self._boundary: asyncio.Event | None = None
        self._freeze_marker: bytes | None = None
        self._frozen: asyncio.Event | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        self._call(self._listen())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def cut_at_commit_boundary(self, timeout_s: float) -> CutReport:
        """Cut once a COMMIT's acknowledgement and a later COMMIT are both held back (or at the timeout)."""
        return self._call(self._cut_at_commit_boundary(timeout_s))

    def resume(self) -> None:
        self._call(self._listen())

    def freeze_after(self, marker: bytes) -> None:
        """Freeze the connection that next sends ``marker`` upstream, right after forwarding it."""
        self._call(self._arm_freeze(marker))

    def wait_frozen(self, timeout_s: float) -> bool:
        """Whether a connection has been frozen since ``freeze_after``, waiting up to ``timeout_s``."""
        return self._call(self._wait_frozen(timeout_s))

    async def _arm_freeze(self, marker: bytes) -> None:
        self._freeze_marker, self._frozen = marker, asyncio.Event()

    async def _wait_frozen(self, timeout_s: float) -> bool:
        assert self._frozen is not None, "freeze_after() first"
        with suppress(TimeoutError):
            await asyncio.wait_for(self._frozen.wait(), timeout_s)
        return self._frozen.is_set()

    async def _listen(self) -> None:
        self._listener = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._listener.sockets[0].getsockname()[1]

    async def _cut_at_commit_boundary(self, timeout_s: float) -> CutReport:
        self._boundary = asyncio.Event()
        self._armed = True
        with suppress(TimeoutError):
            await asyncio.wait_for(self._boundary.wait(), timeout_s)
        connections = await self._cut()
        report = CutReport(connections, self._acknowledgement_withheld, self._commits_withheld)
        self._armed, self._committing, self._boundary = False, None, None
        return report

    def _held_back(self) -> None:
        if self._boundary is not None and self._acknowledgement_withheld and self._commits_withheld:
            self._boundary.set()

    async def _cut(self) -> int:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        links = dict(self._links)
        for link in links.values():
            link.abort()
        if links:
            await asyncio.wait(links, timeout=5)
        return len(links)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        link = self._links[task] = _Link(client_writer, upstream_writer)
        try:
            await asyncio.gather(
                self._to_upstream(client_reader, link), self._to_client(upstream_reader, link)
            )
        finally:
            del self._links[task]

    async def _to_upstream(self, reader: asyncio.StreamReader, link: _Link) -> None:
        try:
            while chunk := await reader.read(65536):
                if link.withheld or link.frozen:
                    continue
                if self._armed and COMMIT in chunk:
                    if self._committing is None:
                        self._committing = link
                        link.swallow_replies = True
                    elif link is not self._committing:
                        link.withheld = True
                        self._commits_withheld += 1
                        self._held_back()
                        continue
                link.upstream.write(chunk)
                if self._freeze_marker is not None and self._freeze_marker in chunk:
                    # Frozen before anything else runs on this loop: not even the reply gets through.
                    link.frozen, self._freeze_marker = True, None
                    assert self._frozen is not None
                    self._frozen.set()
                await link.upstream.drain()
        except OSError:
            pass
        finally:
            # The service closed its side: a frozen link keeps PostgreSQL's side open, unaware.
            (link.client if link.frozen else link.upstream).close()

    async def _to_client(self, reader: asyncio.StreamReader, link: _Link) -> None:
        try:
            while chunk := await reader.read(65536):
                if link.frozen:
                    continue
                if link.swallow_replies:
                    self._acknowledgement_withheld = True
                    self._held_back()
                    continue
                link.client.write(chunk)
                await link.client.drain()
        except OSError:
            pass
        finally:
            # PostgreSQL closed its side: a frozen link keeps the service's side open, unaware.
            (link.upstream if link.frozen else link.client).close()


@dataclass
class Load:
    """What the clients saw, and when the outage began and ended (monotonic clock)."""

    attempts: list[Attempt] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    cut_at: float = 0.0
    """Just after the cut was made."""
    resumed_at: float = 0.0
    cut: CutReport | None = None


async def _drive(base_url: str, headers: dict[str, str], proxy: CuttableProxy) -> Load:
    load = Load()
    requests: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    for _ in range(LOGICAL_REQUESTS):
        key = str(uuid.uuid4())
        load.keys.append(key)
        requests.put_nowait((key, assessment_body(subject=f"FC-{uuid.uuid4().hex[:16]}")))
    halfway = asyncio.Event()

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=15.0, headers=headers) as http:
            while not requests.empty():
                key, body = requests.get_nowait()
                receipt = await post_until_created(http, body, key, load.attempts, backoff_s=BACKOFF_S)
                load.receipts.append(receipt)
                if len(load.receipts) >= LOGICAL_REQUESTS // 2:
                    halfway.set()

    async def outage() -> None:
        await halfway.wait()
        load.cut = await asyncio.to_thread(proxy.cut_at_commit_boundary, 5.0)
        load.cut_at = time.monotonic()
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(proxy.resume)
        load.resumed_at = time.monotonic()

    async with asyncio.TaskGroup() as group:
        group.create_task(outage())
        for _ in range(CLIENTS):
            group.create_task(client())
    return load


def test_store_outage_fails_closed_and_the_service_recovers_by_itself(tmp_path: Path) -> None:
    with fresh_postgresql_database() as database_url:
        direct = production_backend(database_url, tmp_path)
        workdir = tmp_path / "cwd"
        workdir.mkdir()
        migrate(direct, workdir)
        api_key = create_key(direct, workdir)
        upstream = make_url(database_url)
        with CuttableProxy(upstream.host or "127.0.0.1", upstream.port or 5432) as proxy:
            via_proxy = replace(
                direct,
                database_url=upstream.set(port=proxy.port).render_as_string(hide_password=False),
                extra_environment=UNTHROTTLED,
            )
            with running_server(via_proxy, workdir, tmp_path, api_key) as server:
                server.wait_ready()
                load = asyncio.run(_drive(server.base_url, server.headers, proxy))

                # The service came back by itself: the same process, ready, deciding at the first try.
                assert server.process.poll() is None
                with server.client() as client:
                    verification = client.get("/v1/audit/verify")
                    assert client.get("/readyz").status_code == 200
                    probe_key = str(uuid.uuid4())
                    probe = client.post(
                        "/v1/assessments", json=assessment_body(), headers={"Idempotency-Key": probe_key}
                    )
                    assert probe.status_code == 201, probe.text
                server.stop_cleanly()
        rows = stored_chain(database_url)
        with psycopg.connect(owner_url(database_url)) as owner:
            per_key: dict[object, object] = dict(
                owner.execute(
                    "SELECT idempotency_key, count(*) FROM assessment GROUP BY idempotency_key"
                ).fetchall()
            )
            bindings: dict[object, object] = dict(
                owner.execute("SELECT key, assessment_id FROM idempotency_key").fetchall()
            )

    statuses = Counter(attempt.status for attempt in load.attempts)
    replayed = sum(receipt.replayed for receipt in load.receipts)
    after_outage = [receipt.answered_at for receipt in load.receipts if receipt.sent_at >= load.resumed_at]
    assert after_outage, "no request sent after the outage was recorded"
    print(
        f"attempts by status {dict(statuses)}; {replayed} replayed; {load.cut}; first 201 sent after the "
        f"outage came {min(after_outage) - load.resumed_at:.2f} s after it"
    )

    # The cut met a COMMIT carried out but not acknowledged. The process's one audit writer sends one COMMIT
    # at a time (app/service/chain_writer.py): no other COMMIT went out while that one waited for its answer.
    assert load.cut is not None
    assert load.cut.connections >= 1, load.cut
    assert load.cut.acknowledgement_withheld, load.cut
    assert load.cut.commits_withheld == 0, load.cut

    # Fail closed: during the outage the store was unavailable, and said so as a problem with Retry-After.
    unavailable = [attempt for attempt in load.attempts if attempt.status == 503]
    assert any(load.cut_at <= attempt.answered_at <= load.resumed_at for attempt in unavailable), statuses
    for attempt in unavailable:
        assert attempt.content_type is not None
        assert attempt.content_type.startswith(PROBLEM_JSON), attempt
        assert attempt.problem_type == STORE_UNAVAILABLE, attempt
        assert attempt.retry_after is not None, attempt
        assert attempt.retry_after.isdigit(), attempt

    # No 2xx without its record: each 201 names the row that holds exactly that id, seq and hash.
    by_id = {row.id: row for row in rows}
    assert len(by_id) == len(rows)
    for receipt in load.receipts:
        row = by_id.get(receipt.id)
        assert row is not None, (
            f"a 201 was given for {receipt.id} (seq {receipt.seq}) and nothing was recorded"
        )
        assert (row.seq, row.hash, row.prev_hash) == (receipt.seq, receipt.hash, receipt.prev_hash)
        assert (row.idempotency_key, row.subject_id) == (receipt.key, receipt.subject_id)
        assert receipt.idempotency_key == receipt.key
        assert bindings[receipt.key] == receipt.id

    # Every logical request got its 201 (the wait for each bounded by post_until_created's give-up time,
    # so the service recovered by itself, as the probe's first-try 201 shows too) and was recorded once.
    assert sorted(receipt.key for receipt in load.receipts) == sorted(load.keys)
    assert per_key == dict.fromkeys([*load.keys, probe_key], 1)

    # The chain: 1..N without a gap, each record linked to the one before; intact before the probe.
    total = LOGICAL_REQUESTS + 1
    assert [row.seq for row in rows] == list(range(1, total + 1))
    assert rows[-1].id == uuid.UUID(probe.json()["id"])
    assert len({row.prev_hash for row in rows}) == total
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, total))
    assert verification.status_code == 200, verification.text
    report = verification.json()
    assert report["intact"] is True, report
    assert report["checked"] == LOGICAL_REQUESTS
    assert report["last_seq"] == LOGICAL_REQUESTS

    # The decision whose acknowledgement was lost reached its client by a retry with the same key.
    assert replayed >= 1, statuses


# A connection holding the chain's lock goes silent (half-open: no FIN, no RST, nothing). PostgreSQL must end
# that transaction by itself (idle_in_transaction_session_timeout) so that the lock comes free, and the
# request it was serving must be answered once the transaction's deadline has passed (and psycopg has given
# up on the cancelled query), with its connection discarded.

CHAIN_LOCK_STATEMENT = b"pg_advisory_xact_lock"
"""In the SQL of the chain's lock (AssessmentRepository.take_turn, app/store/repositories.py), not in the
Idempotency-Key's pg_try_advisory_xact_lock. The turn's message is never prepared, so every request sends
the text: the freeze comes once the message that takes the lock has gone."""
TRANSACTION_TIMEOUT_S = 2
IDLE_IN_TRANSACTION_TIMEOUT_MS = 2000
WARM_UP = 3
FROZEN_CLIENT_TIMEOUT_S = 15.0
"""A bound on a hang, above the deadline plus what psycopg 3.3 may spend on a cancelled query (up to 5 s to
send the cancel request, then up to 5 s waiting for the query to end, before it closes the connection)."""
RECOVERY_S = 10.0
AFTER_RECOVERY = 3
APPLICATION_NAME = "il6-eligibility"

_CHAIN_LOCK_HOLDERS = """
SELECT DISTINCT activity.pid, activity.state
FROM pg_stat_activity AS activity JOIN pg_locks AS lock ON lock.pid = activity.pid
WHERE activity.datname = current_database() AND activity.application_name = %s
  AND lock.locktype = 'advisory' AND lock.objsubid = 1 AND lock.granted
"""
_SESSIONS = """
SELECT pid, state, left(query, 80) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = %s
"""


@dataclass
class Freeze:
    """What the clients saw around the freeze, and the session that held the chain's lock meanwhile."""

    receipts: list[Receipt] = field(default_factory=list)
    """Every 201, in order: the warm-up's, then those sent after the freeze."""
    attempts: list[Attempt] = field(default_factory=list)
    frozen_key: str = ""
    frozen_subject: str = ""
    frozen_response: httpx.Response | None = None
    frozen_after_s: float = 0.0
    """From sending the frozen request to its answer."""
    holder: tuple[object, ...] = ()
    """(pid, state) of the session holding the chain's lock just after the freeze."""
    recovered_after_s: float = 0.0
    """From the freeze to the first 201 sent after it."""


def _settled_sessions(database_url: str, timeout_s: float) -> list[tuple[object, ...]]:
    """The service's sessions (pid, state, query) once none is idle in a transaction, or at ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(owner_url(database_url), connect_timeout=5, autocommit=True) as owner:
        while True:
            sessions = owner.execute(_SESSIONS, (APPLICATION_NAME,)).fetchall()
            settled = all(state != "idle in transaction" for _, state, _ in sessions)
            if settled or time.monotonic() >= deadline:
                return sessions
            time.sleep(0.1)


def _chain_lock_holder(database_url: str, timeout_s: float) -> tuple[object, ...]:
    """The service's session holding the chain's lock, idle in its transaction; polled up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    holders: list[tuple[object, ...]] = []
    with psycopg.connect(owner_url(database_url), connect_timeout=5, autocommit=True) as owner:
        while time.monotonic() < deadline:
            holders = owner.execute(_CHAIN_LOCK_HOLDERS, (APPLICATION_NAME,)).fetchall()
            if [state for _, state in holders] == ["idle in transaction"]:
                return holders[0]
            time.sleep(0.02)
    pytest.fail(f"no session idle in transaction held the chain's lock after the freeze: {holders}")


async def _freeze_the_chain_lock(
    base_url: str, headers: dict[str, str], proxy: CuttableProxy, database_url: str
) -> Freeze:
    freeze = Freeze()

    async def decide(http: httpx.AsyncClient, *, give_up_after_s: float) -> Receipt:
        key, body = str(uuid.uuid4()), assessment_body(subject=f"FZ-{uuid.uuid4().hex[:16]}")
        receipt = await post_until_created(
            http, body, key, freeze.attempts, backoff_s=BACKOFF_S, give_up_after_s=give_up_after_s
        )
        freeze.receipts.append(receipt)
        return receipt

    async def frozen_request(http: httpx.AsyncClient) -> None:
        freeze.frozen_key, freeze.frozen_subject = str(uuid.uuid4()), f"FROZEN-{uuid.uuid4().hex[:16]}"
        sent_at = time.monotonic()
        try:
            freeze.frozen_response = await http.post(
                "/v1/assessments",
                json=assessment_body(subject=freeze.frozen_subject),
                headers={"Idempotency-Key": freeze.frozen_key},
            )
        except httpx.TimeoutException:
            pytest.fail(f"the frozen request got no answer within {FROZEN_CLIENT_TIMEOUT_S:.0f} s")
        freeze.frozen_after_s = time.monotonic() - sent_at

    async with httpx.AsyncClient(base_url=base_url, timeout=FROZEN_CLIENT_TIMEOUT_S, headers=headers) as http:
        for _ in range(WARM_UP):
            await decide(http, give_up_after_s=10.0)
        assert [attempt.status for attempt in freeze.attempts] == [201] * WARM_UP, freeze.attempts

        await asyncio.to_thread(proxy.freeze_after, CHAIN_LOCK_STATEMENT)
        frozen = asyncio.create_task(frozen_request(http))
        assert await asyncio.to_thread(proxy.wait_frozen, 5.0), "no request asked for the chain's lock"
        frozen_at = time.monotonic()
        # While it is frozen, the lock is PostgreSQL's to free: its session sits idle in its transaction.
        freeze.holder = await asyncio.to_thread(
            _chain_lock_holder, database_url, IDLE_IN_TRANSACTION_TIMEOUT_MS / 1000
        )

        # The service recovers by itself: a decision sent after the freeze is recorded within RECOVERY_S
        # (retried with its key on 503 or 409 meanwhile), and the next ones at the first try.
        first = await decide(http, give_up_after_s=RECOVERY_S)
        freeze.recovered_after_s = first.answered_at - frozen_at
        for _ in range(AFTER_RECOVERY):
            attempts_before = len(freeze.attempts)
            await decide(http, give_up_after_s=RECOVERY_S)
            assert [attempt.status for attempt in freeze.attempts[attempts_before:]] == [201]
        await frozen
    return freeze


def test_a_silent_connection_holding_the_chain_lock_does_not_stop_the_service(tmp_path: Path) -> None:
    with fresh_postgresql_database() as database_url:
        direct = production_backend(database_url, tmp_path)
        workdir = tmp_path / "cwd"
        workdir.mkdir()
        migrate(direct, workdir)
        api_key = create_key(direct, workdir)
        upstream = make_url(database_url)
        with CuttableProxy(upstream.host or "127.0.0.1", upstream.port or 5432) as proxy:
            via_proxy = replace(
                direct,
                database_url=upstream.set(port=proxy.port).render_as_string(hide_password=False),
                extra_environment={
                    **UNTHROTTLED,
                    "IL6_DB_TRANSACTION_TIMEOUT_S": str(TRANSACTION_TIMEOUT_S),
                    "IL6_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": str(IDLE_IN_TRANSACTION_TIMEOUT_MS),
                },
            )
            with running_server(via_proxy, workdir, tmp_path, api_key) as server:
                server.wait_ready()
                freeze = asyncio.run(
                    _freeze_the_chain_lock(server.base_url, server.headers, proxy, database_url)
                )

                assert server.process.poll() is None
                with server.client() as client:
                    verification = client.get("/v1/audit/verify")
                    assert client.get("/readyz").status_code == 200
                sessions = _settled_sessions(database_url, 5.0)
                server.stop_cleanly()
        rows = stored_chain(database_url)
        with psycopg.connect(owner_url(database_url)) as owner:
            per_key: dict[object, object] = dict(
                owner.execute(
                    "SELECT idempotency_key, count(*) FROM assessment GROUP BY idempotency_key"
                ).fetchall()
            )
            frozen_subject_rows = owner.execute(
                "SELECT count(*) FROM assessment WHERE subject_id = %s", (freeze.frozen_subject,)
            ).fetchone()
            frozen_key_bindings = owner.execute(
                "SELECT count(*) FROM idempotency_key WHERE key = %s", (freeze.frozen_key,)
            ).fetchone()

    statuses = Counter(attempt.status for attempt in freeze.attempts)
    print(
        f"frozen request answered in {freeze.frozen_after_s:.2f} s; first 201 after the freeze came "
        f"{freeze.recovered_after_s:.2f} s after it; attempts by status {dict(statuses)}; lock holder "
        f"{freeze.holder}; sessions at the end {sessions}"
    )

    # (1) The frozen request was answered, not left hanging: a problem that invites a retry.
    response = freeze.frozen_response
    assert response is not None
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    assert response.json()["type"] == STORE_UNAVAILABLE, response.text
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None, response.headers
    assert retry_after.isdigit(), response.headers

    # (2) Recovered by itself: shown in _freeze_the_chain_lock; whatever failed meanwhile failed closed.
    for attempt in freeze.attempts:
        if attempt.status != 201:
            assert attempt.status in {409, 503}, attempt
            assert attempt.content_type is not None, attempt
            assert attempt.content_type.startswith(PROBLEM_JSON), attempt
            assert attempt.retry_after is not None, attempt
            assert attempt.retry_after.isdigit(), attempt

    # (3) The frozen decision was not recorded, nor its key bound; each 201 is exactly one row, the chain
    # is whole, and the service's own verification says so.
    assert frozen_subject_rows == (0,)
    assert frozen_key_bindings == (0,)
    total = WARM_UP + 1 + AFTER_RECOVERY
    assert len(freeze.receipts) == total
    assert per_key == {receipt.key: 1 for receipt in freeze.receipts}
    by_id = {row.id: row for row in rows}
    for receipt in freeze.receipts:
        row = by_id[receipt.id]
        assert (row.seq, row.hash, row.prev_hash) == (receipt.seq, receipt.hash, receipt.prev_hash)
        assert (row.idempotency_key, row.subject_id) == (receipt.key, receipt.subject_id)
    assert [row.seq for row in rows] == list(range(1, total + 1))
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, total))
    assert verification.status_code == 200, verification.text
    report = verification.json()
    assert report["intact"] is True, report
    assert report["checked"] == total
    assert report["last_seq"] == total

    # (4) PostgreSQL ended the silent transaction (releasing the lock), and nothing is left idle in one.
    assert freeze.holder[0] not in {pid for pid, _, _ in sessions}, sessions
    assert all(state != "idle in transaction" for _, state, _ in sessions), sessions
