"""Statements run through psycopg directly (app/store/direct.py) on PostgreSQL, by the audit writer and the
key lookup: the same SQL and answers as through SQLAlchemy, times in UTC whatever the connection's time zone,
errors raised as SQLAlchemy raises them, and lookups outside any transaction."""

import asyncio
import gc
import weakref
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, literal, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.access import issue_key
from app.settings import Environment, Settings
from app.store.copy_append import KEY_BINDINGS, copy_insert
from app.store.database import create_engine_for, create_lookup_session_factory, create_session_factory
from app.store.direct import DirectStatement, driver_connection, fetch_all, fetch_each
from app.store.idempotency_repository import _BINDINGS, _TRY_LOCK_KEYS, NewKeyBinding
from app.store.key_repository import _KEY_COLUMNS
from app.store.models import ApiKey
from app.store.repositories import _HEAD, _LOCK_CHAIN
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

    bind = DirectStatement.of(_BINDINGS)
    assert "unnest(CAST(%(client_ids)s AS VARCHAR[]), CAST(%(keys)s AS VARCHAR[]))" in bind.sql
    assert bind.fixed == {"client_ids": None, "keys": None}


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

    async with sessions() as session:  # a connection of the pool the unit of work below draws from
        zone = await session.scalar(text("SHOW TimeZone"))
    async with UnitOfWork(sessions) as uow:
        rows = await uow.assessments.append([decision])
        [row] = rows
        await uow.idempotency.add(
            [NewKeyBinding("direct-client", "direct-key", "f" * 64, row.id, row.recorded_at)]
        )
        bound = await uow.idempotency.get([("direct-client", "direct-key")])
        await uow.commit()

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
    twice = [NewKeyBinding("direct-client", "twice", "0" * 64, row.id, row.recorded_at)] * 2

    async with sessions() as session:
        with pytest.raises(IntegrityError):
            await copy_insert(session, [binding._asdict() for binding in twice], KEY_BINDINGS)

    async def bind_twice() -> None:
        async with UnitOfWork(sessions) as uow:
            await uow.idempotency.add(twice)
            await uow.commit()

    with pytest.raises(WriteRefused):  # and the unit of work makes it what it makes any refusal
        await bind_twice()


@ON_POSTGRESQL
async def test_keys_read_directly_are_the_keys_the_orm_reads(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    issued = [issue_key() for _ in range(2)]
    async with UnitOfWork(sessions) as uow:
        now = await uow.keys.now()
        for index, key in enumerate(issued):
            await uow.keys.add(
                ApiKey(
                    key_id=key.key_id,
                    name=f"direct-{key.key_id}",
                    secret_sha256=key.secret_sha256,
                    scopes=["assess", "read"],
                    sites=None if index else ["PIT", "UPMC"],
                    created_at=now,
                    created_by="tests",
                    expires_at=now + timedelta(days=1) if index else None,
                    revoked_at=None if index else now,
                    revoked_by=None if index else "tests",
                )
            )
        await uow.commit()
    asked = [key.key_id for key in issued] + ["0" * 16]

    async with UnitOfWork(sessions) as uow:
        read_at, direct = await uow.keys.get_many_with_now(asked)
        through_orm = {}
        for key in issued:
            loaded = await uow.keys.get(key.key_id)
            assert loaded is not None
            through_orm[key.key_id] = {name: getattr(loaded, name) for name in _KEY_COLUMNS}

    assert read_at.tzinfo is UTC
    assert read_at >= now
    assert sorted(key.key_id for key in direct) == sorted(key.key_id for key in issued)
    for row in direct:
        assert {name: getattr(row, name) for name in _KEY_COLUMNS} == through_orm[row.key_id]
        times = [value for value in vars(row).values() if isinstance(value, datetime)]
        assert times
        assert all(value.tzinfo is UTC for value in times)


@ON_POSTGRESQL
async def test_a_lookup_session_runs_each_statement_on_its_own(database_url: str) -> None:
    settings = Settings(database_url=SecretStr(database_url), environment=Environment.TEST)
    engine = create_engine_for(settings)
    try:
        async with create_lookup_session_factory(engine)() as lookup:
            first = await lookup.scalar(text("SELECT now()"))
            await asyncio.sleep(0.01)
            second = await lookup.scalar(text("SELECT now()"))
        async with create_session_factory(engine, read_only=True)() as read:
            in_one = [await read.scalar(text("SELECT now()")) for _ in range(2)]
    finally:
        await engine.dispose()

    assert first is not None
    assert second is not None
    assert second > first  # no transaction: now() moves
    assert in_one[0] == in_one[1]  # one transaction: now() is its start


_TRANSACTION = DirectStatement.of(text("SELECT pg_backend_pid(), txid_current()"))
_ODD = 'it\'s \\ "quoted" {1,2} NULL 50% caf\u00e9 $1 %(value)s'


@ON_POSTGRESQL
async def test_statements_sent_together_answer_each_in_order_with_their_own_values(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    echo = DirectStatement.of(select(literal(_ODD), literal(-(2**62))))
    series = DirectStatement.of(text("SELECT generate_series(1, 3)"))
    nothing = DirectStatement.of(text("SELECT 1 WHERE false"))
    async with sessions() as session:
        echoed, counted, empty, [(transaction,)] = await fetch_each(
            session, [echo, series, nothing, DirectStatement.of(text("SELECT txid_current()"))]
        )
        [(same,)] = await fetch_all(session, DirectStatement.of(text("SELECT txid_current()")))

    assert echoed == [(_ODD, -(2**62))]
    assert counted == [(1,), (2,), (3,)]
    assert empty == []
    assert transaction == same  # in the session's transaction


@ON_POSTGRESQL
async def test_statements_sent_together_take_no_callers_values_and_raise_as_sqlalchemy_does(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    given = DirectStatement.of(text("SELECT CAST(:value AS TEXT)"))
    failing = DirectStatement.of(text("SELECT CAST('x' AS INTEGER)"))
    async with sessions() as session:
        with pytest.raises(ValueError, match="its own values only"):
            await fetch_each(session, [_TRANSACTION, given])
        with pytest.raises(DBAPIError) as raised:
            await fetch_each(session, [_TRANSACTION, failing])

    assert "CAST('x' AS INTEGER)" in str(raised.value)


@ON_POSTGRESQL
async def test_statements_run_on_the_connection_the_session_holds_at_the_moment(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as one:
        [first] = await fetch_all(one, _TRANSACTION)
        [[same]] = await fetch_each(one, [_TRANSACTION])
        await one.commit()  # its connection goes back to the pool, the only one idle there
        async with sessions() as two:
            [drawn_again] = await fetch_all(two, _TRANSACTION)
            [after_commit] = await fetch_all(one, _TRANSACTION)
            held = (await (await one.connection()).get_raw_connection()).driver_connection
            assert await driver_connection(one) is held
        await one.rollback()
        [after_rollback] = await fetch_all(one, _TRANSACTION)

    assert same == first  # one transaction, one connection
    assert after_commit[0] != drawn_again[0]  # never the connection another session now holds
    assert after_commit[1] != first[1]
    assert after_rollback[1] not in (first[1], after_commit[1])


@ON_POSTGRESQL
async def test_a_session_that_read_directly_is_freed_without_the_garbage_collector(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # A reference cycle through the session would keep it, its transaction and its connection's objects
    # until a collection: with the collector off, only reference counting can free it.
    gc.collect()
    gc.disable()
    try:
        async with sessions() as session:
            await fetch_all(session, _TRANSACTION)
            await fetch_each(session, [_TRANSACTION])
            freed = weakref.ref(session.sync_session)
            await session.commit()
        del session
        assert freed() is None
    finally:
        gc.enable()
