"""Group commit (app/service/chain_writer.py): the decisions waiting for the writer share one chain turn
and one commit, yet each is answered as if it had been recorded alone.

Through the API, which requests share a batch depends on how the event loop interleaves them, so those
tests assert only what holds for any grouping (and that some grouping happened). The tests that need a
known batch drive a ChainWriter of their own through the service: every ``decide`` gathered at once
queues its decision before the writer's task first runs, so they form exactly one batch.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from types import TracebackType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Connection, Engine, text

from app.api.intake import plain_submission
from app.domain.access import ALL_SITES
from app.domain.classifiers.registry import BUILDERS, load_registry
from app.domain.errors import InvalidInput
from app.service.assessments import AssessmentService, Caller, DecisionRequest, Outcome, RawRequest
from app.service.chain_writer import ChainWriter
from app.service.classifiers import ClassifierCatalog
from app.service.errors import AlreadySuperseded, IdempotencyKeyReused
from app.settings import Environment, Settings
from app.store.database import create_engine_for, create_session_factory
from app.store.repositories import CHAIN_LOCK
from app.store.unit_of_work import StoreUnavailable, UnitOfWork
from tests.factories import assessment_body, subject_id
from tests.integration.conftest import caller_of, count_rows
from tests.integration.test_audit_chain import head, verify
from tests.integration.test_corrections import assert_validation_error, correction, decide
from tests.integration.test_idempotency import assert_problem, bound_keys, new_client, new_key, post
from tests.integration.test_store_failures import FAILING_SUBJECT, refusing_store  # noqa: F401

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:9/none"


def writer_of(client: httpx.AsyncClient) -> ChainWriter:
    """The writer of the app behind ``client`` (a fresh app per test: its counters start at 0)."""
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    app = transport.app
    assert isinstance(app, FastAPI)
    writer = app.state.services.assessments._writer
    assert isinstance(writer, ChainWriter)
    return writer


def all_seqs(db: Engine) -> list[int]:
    with db.connect() as connection:
        return [int(seq) for seq in connection.scalars(text("SELECT seq FROM assessment ORDER BY seq"))]


def hashes(db: Engine, seqs: Sequence[int]) -> dict[int, str]:
    with db.connect() as connection:
        found = connection.execute(
            text("SELECT seq, hash FROM assessment WHERE seq BETWEEN :low AND :high"),
            {"low": min(seqs), "high": max(seqs)},
        )
        return {int(seq): str(hash_) for seq, hash_ in found}


# --- 1. through the API ---------------------------------------------------------------------------------


async def test_concurrent_decisions_are_grouped_and_chained_in_order(
    client: httpx.AsyncClient, db: Engine
) -> None:
    writer = writer_of(client)
    head_seq, head_hash = head(db)
    bodies = [assessment_body() for _ in range(40)]

    responses = await asyncio.gather(*(post(client, body) for body in bodies))

    assert [response.status_code for response in responses] == [201] * 40, [r.text for r in responses]
    receipts = sorted((response.json() for response in responses), key=lambda r: r["audit"]["seq"])
    # Every decision its own record, for its own request.
    assert {r["subject_id"] for r in receipts} == {body["subject_id"] for body in bodies}
    assert len({r["id"] for r in receipts}) == 40
    # Right after the head, without a gap, each linked to the one before it.
    assert [r["audit"]["seq"] for r in receipts] == list(range(head_seq + 1, head_seq + 41))
    assert [r["audit"]["prev_hash"] for r in receipts] == [
        head_hash,
        *(r["audit"]["hash"] for r in receipts[:-1]),
    ]
    stored = hashes(db, [head_seq + 1, head_seq + 40])
    assert [stored[r["audit"]["seq"]] for r in receipts] == [r["audit"]["hash"] for r in receipts]
    # The whole table: seq 1..N, no gaps; and the chain verifies to the last of these.
    assert all_seqs(db) == list(range(1, head_seq + 41))
    report = await verify(client)
    assert report["intact"] is True, report
    assert (report["last_seq"], report["last_hash"]) == (head_seq + 40, receipts[-1]["audit"]["hash"])
    # Recorded in fewer transactions than decisions: they were grouped.
    assert writer.appended == 40
    assert 1 <= writer.batches < 40


async def test_one_key_sent_concurrently_records_one_decision(client: httpx.AsyncClient, db: Engine) -> None:
    writer = writer_of(client)
    body = assessment_body()
    key = new_key()
    caller = await new_client(client)

    responses = await asyncio.gather(*(post(client, body, key=key, client_id=caller) for _ in range(20)))

    # No 409: within one process, a duplicate in the batch waits for the next batch and gets the first.
    assert [response.status_code for response in responses] == [201] * 20, [r.text for r in responses]
    assert [response.headers.get("idempotent-replayed") for response in responses].count(None) == 1
    assert {response.headers.get("idempotent-replayed") for response in responses} == {None, "true"}
    ids = {response.json()["id"] for response in responses}
    assert len(ids) == 1
    assert count_rows(db, body["subject_id"]) == 1
    assert bound_keys(db, key) == [(caller.name, ids.pop())]
    assert writer.appended == 1


async def test_two_corrections_sent_concurrently_record_one(client: httpx.AsyncClient, db: Engine) -> None:
    subject = subject_id()
    first = await decide(client, assessment_body(subject=subject))

    responses = await asyncio.gather(
        post(client, correction(subject, first["id"], value=3, comparator=None)),
        post(client, correction(subject, first["id"], value=40, comparator=None)),
    )

    assert sorted(response.status_code for response in responses) == [201, 409], [r.text for r in responses]
    [winner] = [response for response in responses if response.status_code == 201]
    [loser] = [response for response in responses if response.status_code == 409]
    problem = assert_problem(loser, 409, "already-superseded")
    assert winner.json()["id"] in problem["detail"]
    assert winner.json()["supersedes"] == first["id"]
    assert count_rows(db, subject) == 2
    fetched = (await client.get(f"/v1/assessments/{first['id']}")).json()
    assert fetched["superseded_by"] == winner.json()["id"]


async def test_a_refused_request_does_not_hold_back_the_others(client: httpx.AsyncClient, db: Engine) -> None:
    key = new_key()
    bound = await post(client, assessment_body(), key=key)
    assert bound.status_code == 201, bound.text
    reused = assessment_body()  # another request under the same key
    unknown = correction(subject_id(), str(uuid.uuid4()))  # corrects a decision that does not exist
    fine = [assessment_body() for _ in range(4)]
    rows_before = count_rows(db)

    first, second, refused_key, refused_correction, third, fourth = await asyncio.gather(
        post(client, fine[0]),
        post(client, fine[1]),
        post(client, reused, key=key),
        post(client, unknown),
        post(client, fine[2]),
        post(client, fine[3]),
    )

    for response in (first, second, third, fourth):
        assert response.status_code == 201, response.text
    assert_problem(refused_key, 422, "idempotency-key-reused")
    assert_validation_error(refused_correction, "/supersedes")
    assert [count_rows(db, body["subject_id"]) for body in fine] == [1, 1, 1, 1]
    assert count_rows(db, reused["subject_id"]) == count_rows(db, unknown["subject_id"]) == 0
    assert count_rows(db) == rows_before + 4
    assert bound_keys(db, key) == [(await caller_of(client), bound.json()["id"])]
    assert (await verify(client))["intact"] is True


# --- 2. a writer of the test's own: known batches -------------------------------------------------------


@dataclass
class Writing:
    """A service on a ChainWriter of its own; ``transactions`` counts the units of work it opened."""

    service: AssessmentService
    writer: ChainWriter
    caller: Caller
    transactions: int = 0

    def submit(self, body: dict[str, Any], *, key: str | None = None) -> Awaitable[Outcome]:
        raw = RawRequest(json.dumps(body).encode(), "application/json")
        return self.service.decide(plain_submission(body), raw, self.caller, key)

    async def gather(self, *requests: Awaitable[Outcome]) -> list[Outcome | BaseException]:
        """Submitted at once: each queues before the writer runs, so they form one batch."""
        return await asyncio.gather(*requests, return_exceptions=True)

    async def many(self, *bodies: dict[str, Any], key: str | None = None) -> list[Outcome | Exception]:
        """Decided together (prepare_many) and then recorded together (record_many), as a batch's chunk
        is; with ``key``, the i-th request carries the key '<key>:<i>'."""
        requests = [
            DecisionRequest(
                plain_submission(body),
                RawRequest(json.dumps(body).encode(), "application/json"),
                None if key is None else f"{key}:{index}",
            )
            for index, body in enumerate(bodies)
        ]
        return await self.service.record_many(await self.service.prepare_many(requests, self.caller))


def settings_for(database_url: str, **fields: Any) -> Settings:
    return Settings(database_url=SecretStr(database_url), environment=Environment.TEST, **fields)


@asynccontextmanager
async def writing(
    settings: Settings,
    unit_of_work_class: type[UnitOfWork] = UnitOfWork,
    *,
    catalog_url: str | None = None,
    **writer_options: Any,
) -> AsyncIterator[Writing]:
    """A service whose writer writes to ``settings``' store; its classifier versions are read from
    ``catalog_url`` when given (a reachable store, for tests of a writer whose store is not)."""
    engine = create_engine_for(settings)
    sessions = create_session_factory(engine)
    catalog_engine = engine if catalog_url is None else create_engine_for(settings_for(catalog_url))

    def unit_of_work() -> UnitOfWork:
        own.transactions += 1
        return unit_of_work_class(sessions)

    writer = ChainWriter(unit_of_work, **writer_options)
    catalog_sessions = partial(UnitOfWork, create_session_factory(catalog_engine))
    catalog = ClassifierCatalog(load_registry(settings.classifier_dir), catalog_sessions, BUILDERS)
    await catalog.start()
    service = AssessmentService(catalog, partial(UnitOfWork, sessions), writer)
    own = Writing(service, writer, Caller(f"tests-{uuid.uuid4().hex[:12]}", None, ALL_SITES))
    try:
        yield own
    finally:
        await writer.aclose()
        await engine.dispose()
        await catalog_engine.dispose()


@pytest.fixture
async def direct(database_url: str) -> AsyncIterator[Writing]:
    async with writing(settings_for(database_url)) as own:
        yield own


def outcome(result: Outcome | BaseException) -> Outcome:
    assert isinstance(result, Outcome), repr(result)
    return result


async def test_a_batch_is_one_transaction_appended_in_arrival_order(direct: Writing, db: Engine) -> None:
    head_seq, head_hash = head(db)
    bodies = [assessment_body() for _ in range(25)]

    results = [outcome(result) for result in await direct.gather(*map(direct.submit, bodies))]

    assert (direct.writer.batches, direct.writer.appended, direct.transactions) == (1, 25, 1)
    assert [result.recorded.subject_id for result in results] == [body["subject_id"] for body in bodies]
    assert [result.recorded.seq for result in results] == list(range(head_seq + 1, head_seq + 26))
    assert [result.recorded.prev_hash for result in results] == [
        head_hash,
        *(result.recorded.hash for result in results[:-1]),
    ]
    assert not any(result.replayed for result in results)
    assert head(db) == (head_seq + 25, results[-1].recorded.hash)
    assert all_seqs(db) == list(range(1, head_seq + 26))


async def test_the_same_key_twice_in_one_batch_gets_the_first_ones_decision(
    direct: Writing, db: Engine
) -> None:
    body, other = assessment_body(), assessment_body()
    key = new_key()

    first, again, reused = await direct.gather(
        direct.submit(body, key=key), direct.submit(body, key=key), direct.submit(other, key=key)
    )

    # One transaction: the later requests with the key are answered from the first's decision once it has
    # committed: the same request is replayed, another refused.
    assert (direct.writer.batches, direct.writer.appended, direct.transactions) == (1, 1, 1)
    recorded = outcome(first)
    assert recorded.replayed is False
    assert outcome(again).replayed is True
    assert outcome(again).recorded == recorded.recorded
    assert isinstance(reused, IdempotencyKeyReused)
    assert count_rows(db, body["subject_id"]) == 1
    assert count_rows(db, other["subject_id"]) == 0
    assert bound_keys(db, key) == [(direct.caller.client_id, str(recorded.recorded.id))]


async def test_the_same_key_after_a_refused_request_waits_for_the_next_batch(
    direct: Writing, db: Engine
) -> None:
    subject = subject_id()
    unknown = correction(subject, str(uuid.uuid4()), value=3, comparator=None)
    key = new_key()

    first, again = await direct.gather(direct.submit(unknown, key=key), direct.submit(unknown, key=key))

    # The first got no decision to share, so the second is decided in a batch of its own (and refused
    # the same way: the key is bound to nothing).
    assert (direct.writer.batches, direct.writer.appended, direct.transactions) == (2, 0, 2)
    assert isinstance(first, InvalidInput)
    assert isinstance(again, InvalidInput)
    assert count_rows(db, subject) == 0
    assert bound_keys(db, key) == []


async def test_two_corrections_of_one_decision_in_one_batch(direct: Writing, db: Engine) -> None:
    subject = subject_id()
    corrected = outcome((await direct.gather(direct.submit(assessment_body(subject=subject))))[0])
    target = str(corrected.recorded.id)

    first, second = await direct.gather(
        direct.submit(correction(subject, target, value=3, comparator=None)),
        direct.submit(correction(subject, target, value=40, comparator=None)),
    )

    assert (direct.writer.batches, direct.writer.appended) == (2, 2)
    winner = outcome(first)
    assert winner.recorded.supersedes == corrected.recorded.id
    # Refused in the batch itself (the store does not know the winner yet), naming the winner.
    assert isinstance(second, AlreadySuperseded)
    assert second.successor == winner.recorded.id
    assert count_rows(db, subject) == 2
    now = await direct.service.get(corrected.recorded.id, ALL_SITES)
    assert now == replace(corrected.recorded, superseded_by=winner.recorded.id)


async def test_a_refusal_in_a_batch_is_that_items_own(direct: Writing, db: Engine) -> None:
    key, own_key, refused_key = new_key(), new_key(), new_key()
    bound = outcome((await direct.gather(direct.submit(assessment_body(), key=key)))[0])
    theirs = outcome((await direct.gather(direct.submit(assessment_body())))[0])
    head_seq, _ = head(db)
    fine = [assessment_body() for _ in range(4)]
    reused = assessment_body()
    unknown = correction(subject_id(), str(uuid.uuid4()))
    other_subject = correction(subject_id(), str(theirs.recorded.id))

    results = await direct.gather(
        direct.submit(fine[0]),
        direct.submit(reused, key=key),
        direct.submit(fine[1], key=own_key),
        direct.submit(unknown, key=refused_key),
        direct.submit(fine[2]),
        direct.submit(other_subject),
        direct.submit(fine[3]),
    )

    assert (direct.writer.batches, direct.transactions) == (3, 3)
    recorded = [outcome(results[index]) for index in (0, 2, 4, 6)]
    # The refused took no place in the chain: the others follow one another with no gap.
    assert [result.recorded.seq for result in recorded] == list(range(head_seq + 1, head_seq + 5))
    assert [result.recorded.subject_id for result in recorded] == [body["subject_id"] for body in fine]
    assert isinstance(results[1], IdempotencyKeyReused)
    assert isinstance(results[3], InvalidInput)
    assert results[3].pointer == "/supersedes"
    assert isinstance(results[5], InvalidInput)
    assert results[5].pointer == "/supersedes"
    # Nothing of the refused was written, everything of the accepted was (its key's binding too).
    assert head(db) == (head_seq + 4, recorded[-1].recorded.hash)
    for body in (reused, unknown, other_subject):
        assert count_rows(db, body["subject_id"]) == 0
    assert bound_keys(db, key) == [(direct.caller.client_id, str(bound.recorded.id))]
    assert bound_keys(db, own_key) == [(direct.caller.client_id, str(recorded[1].recorded.id))]
    assert bound_keys(db, refused_key) == []
    assert (await direct.service.get(theirs.recorded.id, ALL_SITES)) == theirs.recorded


async def test_decisions_handed_over_together_share_transactions_and_keep_their_own_answers(
    direct: Writing, db: Engine
) -> None:
    head_seq, head_hash = head(db)
    fine = [assessment_body() for _ in range(5)]
    unknown = correction(subject_id(), str(uuid.uuid4()))  # corrects a decision that does not exist
    unservable = assessment_body(classifier="no-such-classifier")

    results = await direct.many(fine[0], fine[1], unknown, fine[2], unservable, fine[3], fine[4])

    recorded = [outcome(results[index]) for index in (0, 1, 3, 5, 6)]
    assert [result.recorded.subject_id for result in recorded] == [body["subject_id"] for body in fine]
    assert [result.recorded.seq for result in recorded] == list(range(head_seq + 1, head_seq + 6))
    assert [result.recorded.prev_hash for result in recorded] == [
        head_hash,
        *(result.recorded.hash for result in recorded[:-1]),
    ]
    assert not any(result.replayed for result in recorded)
    assert isinstance(results[2], InvalidInput)  # refused in the writer's transaction, that item alone
    assert results[2].pointer == "/supersedes"
    assert isinstance(results[4], InvalidInput)  # refused before anything was queued, as decide refuses it
    assert results[4].pointer == "/classifier"
    # One transaction for all of them (the correction checked in it), one commit.
    assert (direct.writer.batches, direct.writer.appended, direct.transactions) == (1, 5, 1)
    assert count_rows(db, unknown["subject_id"]) == count_rows(db, unservable["subject_id"]) == 0
    assert head(db) == (head_seq + 5, recorded[-1].recorded.hash)


async def test_keys_of_decisions_handed_over_together_replay_and_refuse_each_alone(
    direct: Writing, db: Engine
) -> None:
    key = new_key()
    bodies = [assessment_body(), assessment_body()]
    first = [outcome(result) for result in await direct.many(*bodies, key=key)]

    grown = await direct.many(*bodies, assessment_body(), key=key)  # a retry with one more item
    changed = await direct.many(assessment_body(), bodies[1], key=key)  # another body under '<key>:0'

    assert [outcome(result).recorded for result in grown[:2]] == [result.recorded for result in first]
    assert [outcome(result).replayed for result in grown] == [True, True, False]
    assert isinstance(changed[0], IdempotencyKeyReused)
    assert outcome(changed[1]).replayed is True
    assert [bound_keys(db, f"{key}:{index}") for index in range(3)] == [
        [(direct.caller.client_id, str(first[0].recorded.id))],
        [(direct.caller.client_id, str(first[1].recorded.id))],
        [(direct.caller.client_id, str(outcome(grown[2]).recorded.id))],
    ]
    assert [count_rows(db, body["subject_id"]) for body in bodies] == [1, 1]
    assert direct.writer.appended == 3


async def test_decisions_handed_over_to_a_closed_writer_are_each_refused(direct: Writing, db: Engine) -> None:
    await direct.writer.aclose()
    bodies = [assessment_body() for _ in range(3)]

    results = await direct.many(*bodies)

    assert all(isinstance(result, StoreUnavailable) for result in results), results
    assert len({id(result) for result in results}) == 3  # each its own refusal, as each write raises one
    assert [count_rows(db, body["subject_id"]) for body in bodies] == [0, 0, 0]
    assert direct.transactions == 0


# --- 3. a batch that fails as a whole -------------------------------------------------------------------


async def test_an_unreachable_store_refuses_every_waiting_decision(postgresql_url: str) -> None:
    unreachable = settings_for(UNREACHABLE, db_connect_timeout_s=1)
    async with writing(unreachable, catalog_url=postgresql_url) as own:
        results = await own.gather(*(own.submit(assessment_body()) for _ in range(10)))

        assert all(isinstance(result, StoreUnavailable) for result in results), results
        # One attempt for the batch, not one wait per decision; nothing counted as written.
        assert (own.transactions, own.writer.batches, own.writer.appended) == (1, 0, 0)


@pytest.mark.usefixtures("refusing_store")
async def test_a_decision_the_store_refuses_sinks_only_itself(direct: Writing, db: Engine) -> None:
    """PostgreSQL refuses the COMMIT, SQLite the INSERT (tests/integration/test_store_failures.py). The
    batch's transaction fails, so the writer tries each of its decisions alone, in order: the refused one
    is refused (503), the others are recorded, and a duplicate key in the batch still replays."""
    head_seq, head_hash = head(db)
    key = new_key()
    keyed, failing, plain = assessment_body(), assessment_body(subject=FAILING_SUBJECT), assessment_body()

    first, refused, second, again = await direct.gather(
        direct.submit(keyed, key=key),
        direct.submit(failing),
        direct.submit(plain),
        direct.submit(keyed, key=key),
    )

    assert isinstance(refused, StoreUnavailable), refused
    recorded = [outcome(first), outcome(second)]
    assert [result.recorded.seq for result in recorded] == [head_seq + 1, head_seq + 2]
    assert [result.recorded.prev_hash for result in recorded] == [head_hash, recorded[0].recorded.hash]
    assert outcome(again).replayed is True
    assert outcome(again).recorded == recorded[0].recorded
    # The failed batch, then each decision alone: the refused one is not counted as a batch.
    assert (direct.writer.batches, direct.writer.appended, direct.transactions) == (3, 2, 5)
    assert head(db) == (head_seq + 2, recorded[1].recorded.hash)
    assert [count_rows(db, body["subject_id"]) for body in (keyed, failing, plain)] == [1, 0, 1]
    assert bound_keys(db, key) == [(direct.caller.client_id, str(recorded[0].recorded.id))]


def _release_waiting_for_chain(holder: Connection) -> None:
    """End the sessions the writer gave up on while they waited for the chain's lock."""
    holder.execute(
        text(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = current_database()"
        )
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_batch_past_its_deadline_is_refused_whole(database_url: str, db: Engine) -> None:
    before = head(db)
    bodies = [assessment_body() for _ in range(5)]
    async with writing(settings_for(database_url), transaction_timeout_s=1.0) as own:
        with db.connect() as holder:
            # Another process holds the chain's turn and does not let go.
            holder.execute(text("SELECT pg_advisory_lock(:lock)"), {"lock": CHAIN_LOCK})
            try:
                results = await own.gather(*map(own.submit, bodies))
            finally:
                _release_waiting_for_chain(holder)
                holder.execute(text("SELECT pg_advisory_unlock(:lock)"), {"lock": CHAIN_LOCK})
                holder.commit()

        assert all(isinstance(result, StoreUnavailable) for result in results), results
        assert (own.writer.batches, own.writer.appended, own.transactions) == (0, 0, 1)
        assert head(db) == before
        assert [count_rows(db, body["subject_id"]) for body in bodies] == [0] * 5


STALLED_SUBJECT = "COPY-STALLS"
POSTGRES_STALLS_THE_ROW = [
    """CREATE FUNCTION test_stall_row() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.subject_id = 'COPY-STALLS' THEN PERFORM pg_sleep(30); END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER test_stall_row BEFORE INSERT ON assessment
       FOR EACH ROW EXECUTE FUNCTION test_stall_row()""",
]
POSTGRES_UNSTALL = ["DROP TRIGGER test_stall_row ON assessment", "DROP FUNCTION test_stall_row()"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_batch_whose_rows_stall_past_its_deadline_is_refused_whole(
    database_url: str, db: Engine
) -> None:
    """The deadline passes while PostgreSQL takes the rows (a trigger that sleeps): the COPY is abandoned
    with its connection, every decision of the batch is refused, none recorded, and the writer goes on."""
    before = head(db)
    bodies = [*(assessment_body() for _ in range(3)), assessment_body(subject=STALLED_SUBJECT)]
    with db.begin() as connection:
        for statement in POSTGRES_STALLS_THE_ROW:
            connection.execute(text(statement))
    try:
        async with writing(settings_for(database_url), transaction_timeout_s=1.0) as own:
            results = await own.many(*bodies)

            assert all(isinstance(result, StoreUnavailable) for result in results), results
            assert (own.writer.batches, own.writer.appended, own.transactions) == (0, 0, 1)
            assert head(db) == before

            later = outcome((await own.many(assessment_body()))[0])  # on another connection
            assert (later.recorded.seq, later.recorded.prev_hash) == (before[0] + 1, before[1])
    finally:
        with db.begin() as connection:
            connection.execute(
                text(
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND wait_event = 'PgSleep'"
                )
            )
            for statement in POSTGRES_UNSTALL:
                connection.execute(text(statement))
    assert [count_rows(db, body["subject_id"]) for body in bodies] == [0] * 4


# --- 4. closing -----------------------------------------------------------------------------------------


async def test_aclose_writes_what_is_waiting_then_refuses(direct: Writing, db: Engine) -> None:
    bodies = [assessment_body() for _ in range(5)]
    waiting = [asyncio.ensure_future(direct.submit(body)) for body in bodies]
    await asyncio.sleep(0)  # each request runs up to its wait for the writer, which has not run yet
    assert not any(request.done() for request in waiting)

    await direct.writer.aclose()

    # Recorded by the time aclose returns; each request is then answered with its own record.
    assert [count_rows(db, body["subject_id"]) for body in bodies] == [1] * 5
    results = await asyncio.gather(*waiting)
    assert [result.recorded.subject_id for result in results] == [body["subject_id"] for body in bodies]
    assert not any(result.replayed for result in results)
    assert (direct.writer.batches, direct.writer.appended) == (1, 5)

    late = assessment_body()
    with pytest.raises(StoreUnavailable):
        await direct.submit(late)
    assert count_rows(db, late["subject_id"]) == 0
    assert direct.transactions == 1


class SlowToRelease(UnitOfWork):
    """A store that stalls after the commit, in the clean-up (a reset ROLLBACK that hangs, say)."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.sleep(0.5)
        await super().__aexit__(exc_type, exc, traceback)


async def test_a_deadline_passing_after_the_commit_does_not_refuse_what_was_recorded(
    database_url: str, db: Engine
) -> None:
    bodies = [assessment_body() for _ in range(3)]
    async with writing(settings_for(database_url), SlowToRelease, transaction_timeout_s=0.2) as slow:
        results = await slow.gather(*(slow.submit(body) for body in bodies))

        recorded = [outcome(result) for result in results]  # answered with their decisions, not 503
        assert (slow.writer.batches, slow.writer.appended) == (1, 3)
    assert [count_rows(db, body["subject_id"]) for body in bodies] == [1, 1, 1]
    assert len({decision.recorded.seq for decision in recorded}) == 3
