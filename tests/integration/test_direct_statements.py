"""Statements the audit writer runs through psycopg directly (app/store/direct.py), on PostgreSQL: the same
SQL and answers as through SQLAlchemy, times in UTC whatever the connection's time zone, and errors raised
as SQLAlchemy raises them."""

import uuid
from datetime import UTC

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.store.direct import DirectStatement, execute_many, fetch_all
from app.store.repositories import _BIND, _HEAD, _LOCK_CHAIN, _TRY_LOCK_KEYS
from app.store.unit_of_work import UnitOfWork, WriteRefused
from tests.integration.test_append import append, new_assessment, verifies

ON_POSTGRESQL = pytest.mark.parametrize("own_database", ["postgresql"], indirect=True)


@pytest.fixture
def database_url(own_database: str) -> str:
    """A database of each test's own: the records appended here are made up."""
    return own_database


def test_a_statement_keeps_its_own_literals_and_names_the_callers() -> None:
    lock = DirectStatement.of(_LOCK_CHAIN)
    assert "pg_advisory_xact_lock(%(" in lock.sql
    assert list(lock.fixed.values()) == [0x494C_365F_4155_4454]

    claim = DirectStatement.of(_TRY_LOCK_KEYS)
    assert claim.fixed["lock_keys"] is None  # the caller's
    assert claim.parameters({"lock_keys": [1, 2]})["lock_keys"] == [1, 2]
    assert 0x494C_3649 in claim.parameters({"lock_keys": [1]}).values()  # the key space, fixed

    bind = DirectStatement.of(_BIND, column_keys=["client_id", "key", "fingerprint", "assessment_id"])
    assert bind.sql.startswith("INSERT INTO idempotency_key (client_id, key, fingerprint, assessment_id")
    assert "clock_timestamp()" in bind.sql


@ON_POSTGRESQL
async def test_the_head_read_directly_is_the_head_sqlalchemy_reads(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await append(sessions, [new_assessment(), new_assessment()])

    async with sessions() as session:
        [(_, seq, hash_, recorded_at)] = await fetch_all(session, DirectStatement.of(_HEAD))
        _, sa_seq, sa_hash, sa_recorded_at = (await session.execute(_HEAD)).one()

    assert (seq, hash_, recorded_at) == (sa_seq, sa_hash, sa_recorded_at)
    assert seq == 2


@ON_POSTGRESQL
async def test_times_are_utc_whatever_the_connections_time_zone(
    sessions: async_sessionmaker[AsyncSession], db: Engine
) -> None:
    with db.begin() as connection:  # for every connection opened from now on: the service's are yet to be
        name = connection.execute(text("SELECT current_database()")).scalar_one()
        connection.execute(text(f"ALTER DATABASE \"{name}\" SET TimeZone = 'Pacific/Chatham'"))
    [first] = await append(sessions, [new_assessment()])
    decision = new_assessment()

    async with UnitOfWork(sessions) as uow:
        zone = await uow.assessments._session.scalar(text("SHOW TimeZone"))
        rows = await uow.assessments.append([decision])
        binding = ("direct-client", "direct-key", "f" * 64, decision.id)
        await uow.idempotency.add([binding])
        bound = await uow.idempotency.get([("direct-client", "direct-key")])
        await uow.commit()

    [row] = rows
    assert zone == "Pacific/Chatham"
    assert row.recorded_at.tzinfo is UTC
    assert row.recorded_at >= first.recorded_at
    assert bound[("direct-client", "direct-key")].created_at.tzinfo is UTC
    assert await verifies(sessions, first.seq, row.seq)  # the link to the head read under that zone holds


@ON_POSTGRESQL
async def test_a_refused_row_is_raised_as_sqlalchemy_raises_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [row] = await append(sessions, [new_assessment()])
    binding = {"client_id": "direct-client", "key": "twice", "fingerprint": "0" * 64, "assessment_id": row.id}
    statement = DirectStatement.of(_BIND, column_keys=list(binding))

    async with sessions() as session:
        with pytest.raises(IntegrityError):
            await execute_many(session, statement, [binding, binding])

    async def bind_twice() -> None:
        async with UnitOfWork(sessions) as uow:
            await uow.idempotency.add([("direct-client", "again", "0" * 64, uuid.uuid4())] * 2)
            await uow.commit()

    with pytest.raises(WriteRefused):  # and the unit of work makes it what it makes any refusal
        await bind_twice()
