"""How the audit writer opens each transaction: AssessmentRepository.take_turn, the chain's lock, the head and
the clock (on PostgreSQL one message), then IdempotencyRepository.claim, the Idempotency-Keys' claims and
bindings (one statement). What they answer is what asking one at a time answers, read after the lock is
granted."""

import asyncio
import time
import uuid

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.store.idempotency_repository import KeyBinding, NewKeyBinding
from app.store.repositories import Turn
from app.store.unit_of_work import UnitOfWork
from tests.integration.test_append import append, new_assessment, verifies


@pytest.fixture
def database_url(own_database: str) -> str:
    """A database of each test's own (on each backend): the records appended here are made up."""
    return own_database


async def test_a_turn_answers_what_asking_one_at_a_time_answers(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [row] = await append(sessions, [new_assessment()])
    bound = ("turn-client", "bound-key")
    async with UnitOfWork(sessions) as uow:
        await uow.idempotency.add([NewKeyBinding(*bound, "f" * 64, row.id, row.recorded_at)])
        await uow.commit()
    keys = [bound, ("turn-client", "free-key"), ("other-client", "bound-key")]

    async with UnitOfWork(sessions) as uow:
        turn = await uow.assessments.take_turn()
        claimed, bound_to = await uow.idempotency.claim(keys)
    async with UnitOfWork(sessions) as uow:
        await uow.assessments.lock_chain()
        held = await uow.idempotency.try_lock(keys)
        bindings = await uow.idempotency.get(keys)
        now, head = await uow.assessments.head()

    assert claimed == held == [True, True, True]
    assert bound_to == bindings
    assert list(bound_to) == [bound]
    assert bound_to[bound].assessment_id == row.id
    assert turn.head == head
    assert (turn.head.seq, turn.head.hash) == (row.seq, row.hash)
    assert row.recorded_at <= turn.now <= now


async def test_an_append_links_to_its_turns_head(sessions: async_sessionmaker[AsyncSession]) -> None:
    [first] = await append(sessions, [new_assessment()])

    async with UnitOfWork(sessions) as uow:
        turn = await uow.assessments.take_turn()
        rows = await uow.assessments.append([new_assessment(), new_assessment()], turn)
        await uow.commit()

    assert [row.seq for row in rows] == [first.seq + 1, first.seq + 2]
    assert rows[0].prev_hash == first.hash == turn.head.hash
    assert rows[0].recorded_at == max(turn.now, first.recorded_at)
    assert await verifies(sessions, first.seq, rows[-1].seq)


async def test_a_turn_links_no_append_of_another_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await append(sessions, [new_assessment()])
    async with UnitOfWork(sessions) as uow:
        stale: Turn = await uow.assessments.take_turn()
        await uow.commit()

    async with UnitOfWork(sessions) as uow:
        with pytest.raises(ValueError, match="within the transaction that took it"):
            await uow.assessments.append([new_assessment()], stale)

    async with UnitOfWork(sessions) as uow:
        _, head = await uow.assessments.head()
    assert head == stale.head  # nothing was appended


_WAITING_FOR_THE_LOCK = """
SELECT activity.query FROM pg_stat_activity AS activity JOIN pg_locks AS lock ON lock.pid = activity.pid
WHERE activity.datname = current_database() AND lock.locktype = 'advisory' AND NOT lock.granted
"""


@pytest.mark.parametrize("own_database", ["postgresql"], indirect=True)
async def test_a_waiting_turn_reads_what_the_turn_before_it_committed(
    sessions: async_sessionmaker[AsyncSession], db: Engine
) -> None:
    [first] = await append(sessions, [new_assessment()])
    key = ("turn-client", f"waiting-{uuid.uuid4().hex}")
    url = db.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async with UnitOfWork(sessions) as holder:
        before = await holder.assessments.take_turn()
        [appended] = await holder.assessments.append([new_assessment()], before)
        await holder.idempotency.add([NewKeyBinding(*key, "e" * 64, appended.id, appended.recorded_at)])

        async def next_turn() -> tuple[Turn, list[bool], dict[tuple[str, str], KeyBinding]]:
            async with UnitOfWork(sessions) as uow:
                turn = await uow.assessments.take_turn()
                return turn, *await uow.idempotency.claim([key])

        waiting = asyncio.create_task(next_turn())
        deadline = time.monotonic() + 10
        with psycopg.connect(url, autocommit=True) as owner:
            queries: list[tuple[str]] = []
            while not queries and time.monotonic() < deadline:
                queries = owner.execute(_WAITING_FOR_THE_LOCK).fetchall()
                await asyncio.sleep(0.02)
        assert not waiting.done()
        await holder.commit()
    turn, held, bound = await asyncio.wait_for(waiting, 10)

    # One message: the session waiting for the lock had been sent the head's read too, and no key.
    [(query,)] = queries
    assert "pg_advisory_xact_lock" in query
    assert "clock_timestamp()" in query
    assert "pg_try_advisory_xact_lock" not in query
    assert key[1] not in query
    # Each read ran after the lock was granted, and saw what the turn before it committed meanwhile.
    assert (turn.head.seq, turn.head.hash) == (appended.seq, appended.hash) != (first.seq, first.hash)
    assert bound[key].assessment_id == appended.id
    assert held == [True]
    assert turn.now >= appended.recorded_at


@pytest.mark.parametrize("own_database", ["postgresql"], indirect=True)
async def test_keys_of_any_text_are_claimed_and_read_as_given(
    sessions: async_sessionmaker[AsyncSession], db: Engine
) -> None:
    [row] = await append(sessions, [new_assessment()])
    odd = ["quote ' and \" and \\ backslash", "{braces},commas", "NULL", "50% café \u00e9 ☃", "$1 %(x)s"]
    keys = [("turn client ' \\", name) for name in odd]
    async with UnitOfWork(sessions) as uow:
        await uow.idempotency.add(
            [NewKeyBinding(*key, "d" * 64, row.id, row.recorded_at) for key in keys[:3]]
        )
        await uow.commit()

    async with UnitOfWork(sessions) as uow:
        await uow.assessments.take_turn()
        held, bound = await uow.idempotency.claim(keys)

    assert held == [True] * len(keys)
    assert sorted(bound) == sorted(keys[:3])
    with db.connect() as connection:
        stored = connection.execute(text("SELECT client_id, key FROM idempotency_key")).all()
    assert sorted((client_id, key) for client_id, key in stored) == sorted(keys[:3])


@pytest.mark.parametrize("own_database", ["postgresql"], indirect=True)
async def test_a_key_another_transaction_holds_is_not_claimed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    held_elsewhere, free = ("turn-client", "held-elsewhere"), ("turn-client", "free")
    async with UnitOfWork(sessions) as other:
        assert await other.idempotency.try_lock([held_elsewhere]) == [True]
        async with UnitOfWork(sessions) as uow:
            await uow.assessments.take_turn()
            held, bound = await uow.idempotency.claim([held_elsewhere, free])

    assert held == [False, True]
    assert bound == {}
