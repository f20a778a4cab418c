"""ChainReader.entries: the records verification checks, read on PostgreSQL through psycopg with loaders
of its own, must be the very records the repository's rows make (``to_record``), on each backend."""

import math
import uuid
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.audit import Break, ChainVerifier, record_hash, to_record
from app.service.audit import AuditService, ExportRange
from app.service.checkpoints import CheckpointSigner, load_signing_key
from app.service.offline import verify_records
from app.store.chain_reader import ChainEntry
from app.store.models import Assessment
from app.store.unit_of_work import StoreUnavailable, UnitOfWork
from tests.integration.conftest import behind_the_service
from tests.integration.test_append import append, new_assessment


@pytest.fixture
def database_url(own_database: str) -> str:
    return own_database


async def entries(
    sessions: async_sessionmaker[AsyncSession], from_seq: int, to_seq: int | None, batch_size: int
) -> list[list[ChainEntry]]:
    async with UnitOfWork(sessions) as uow:
        return [
            list(batch)
            async for batch in uow.chain.entries(from_seq=from_seq, to_seq=to_seq, batch_size=batch_size)
        ]


async def repository_records(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[Any, ...]]:
    async with UnitOfWork(sessions) as uow:
        return [
            (to_record(row), row["hash"], row["request_body"])
            async for rows in uow.assessments.chain()
            for row in cast(Sequence[Mapping[str, Any]], rows)
        ]


async def test_the_records_read_are_the_records_the_rows_make(
    sessions: async_sessionmaker[AsyncSession], db: Engine
) -> None:
    plain = new_assessment()
    detailed = new_assessment(
        request_id="req-reader-1",
        idempotency_key="key:reader:1",
        site_id=None,
        risk_group=None,
        input={
            "text": 'line\nbreak \U0001f9ea \\ "quoted"',
            "n": [1, 2.5, None, True, {"z": {}}],
            "big": 2**53 - 1,
        },
        decision={"deep": [[{"a": "b"}]], "empty": [], "unicode": "\u00e9\u4e2d", "small": 1e-7},
        supersedes=plain.id,
        correction_reason="Corrected:\tthe\nunit",
    )
    await append(sessions, [plain, detailed, new_assessment(), new_assessment(), new_assessment()])
    expected = await repository_records(sessions)

    read = await entries(sessions, 1, None, batch_size=2)

    assert [len(batch) for batch in read] == [2, 2, 1]
    assert [entry[:3] for batch in read for entry in batch] == expected
    # Read through psycopg, orjson decoded every document: each record is vouched exact.
    exact = db.dialect.name == "postgresql"
    assert [entry[3] for batch in read for entry in batch] == [exact] * 5
    record = read[0][1][0]
    assert (record["id"], record["supersedes"]) == (str(detailed.id), str(plain.id))
    assert record["recorded_at"].endswith("Z")
    assert len(record["recorded_at"]) == len("2026-01-01T00:00:00.000000Z")


async def test_a_range_is_read_to_its_end_and_no_further(sessions: async_sessionmaker[AsyncSession]) -> None:
    await append(sessions, [new_assessment() for _ in range(5)])

    read = await entries(sessions, 2, 4, batch_size=2)

    assert [[record["seq"] for record, *_ in batch] for batch in read] == [[2, 3], [4]]
    assert await entries(sessions, 6, None, batch_size=2) == []


@pytest.mark.parametrize("own_database", ["postgresql"], indirect=True)
async def test_a_connection_lost_mid_read_is_the_store_unavailable(
    sessions: async_sessionmaker[AsyncSession], db: Engine
) -> None:
    await append(sessions, [new_assessment() for _ in range(3)])
    batches = 0

    async def read_while_the_session_is_ended() -> None:
        nonlocal batches
        async with UnitOfWork(sessions) as uow:
            async for _ in uow.chain.entries(batch_size=1):
                batches += 1
                with db.connect() as connection:  # as a failover would: the reading session is ended
                    connection.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )

    with pytest.raises(StoreUnavailable):
        await read_while_the_session_is_ended()
    assert batches == 1


@pytest.mark.parametrize("own_database", ["postgresql"], indirect=True)
async def test_a_number_beyond_a_double_where_null_was_hashed_breaks_the_chain(
    sessions: async_sessionmaker[AsyncSession], db: Engine
) -> None:
    """orjson refuses such a number, so the standard library reads it, as infinity; and infinity
    serialises as the very null that was hashed. The record read must still fail its check."""
    await append(sessions, [new_assessment() for _ in range(3)])
    with behind_the_service(db) as connection:
        connection.execute(
            text(
                "UPDATE assessment SET input = jsonb_set(input, '{classifier}', to_jsonb(1e400 + 0.5)) "
                "WHERE seq = 2"
            )
        )

    read = [entry for batch in await entries(sessions, 1, None, batch_size=10) for entry in batch]
    verifier = ChainVerifier()

    assert read[1][0]["input"]["classifier"] == math.inf
    assert [exact for *_, exact in read] == [True, False, True]  # its bytes must be read back
    outcomes = [verifier.feed(record, digest, body, exact=exact) for record, digest, body, exact in read]
    assert outcomes == [True, False, False]
    assert verifier.broken is not None
    assert (verifier.broken.seq, verifier.broken.reason) == (2, Break.HASH)


async def test_a_record_stored_twice_under_one_seq_is_read_and_breaks_the_chain(
    sessions: async_sessionmaker[AsyncSession], db: Engine, tmp_path: Path
) -> None:
    """An owner who drops the constraints can store a second record under a seq, hashed as the writer
    hashes: where that seq ends a page, the next page must still read it, for verification and export."""
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite keeps the primary key on seq: a seq is stored once there")
    await append(sessions, [new_assessment() for _ in range(5)])
    table = cast(Table, Assessment.__table__)
    with behind_the_service(db) as connection:
        for constraint in ("pk_assessment", "uq_assessment_prev_hash"):
            connection.execute(text(f"ALTER TABLE assessment DROP CONSTRAINT {constraint} CASCADE"))
        connection.execute(text("CREATE INDEX ix_assessment_seq_again ON assessment (seq)"))
        second = connection.execute(select(table).where(table.c.seq == 2)).mappings().one()
        forged = {**second, "id": uuid.uuid4(), "eligibility_status": "ineligible"}
        forged["hash"] = record_hash(to_record(forged))
        connection.execute(insert(table).values(forged))
    audit = AuditService(
        partial(UnitOfWork, sessions),
        CheckpointSigner(load_signing_key(tmp_path / "key.pem", create=True)),
        batch_size=2,  # seq 2 ends the first page
    )

    read = await entries(sessions, 1, None, batch_size=2)
    verification = await audit.verify()
    exported = [record async for record in await audit.export(ExportRange())]

    assert [entry[0]["seq"] for batch in read for entry in batch] == [1, 2, 2, 3, 4, 5]
    assert verification.broken is not None
    assert (verification.broken.seq, verification.broken.reason) == (2, Break.SEQUENCE_GAP)
    assert verification.checked == 2
    assert sorted(record["id"] for record in exported if record["seq"] == 2) == sorted(
        [str(second["id"]), str(forged["id"])]
    )
    assert len(exported) == 6


async def test_an_erased_request_body_breaks_the_chain_online_and_offline(
    sessions: async_sessionmaker[AsyncSession], db: Engine, tmp_path: Path
) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite cannot drop a column's NOT NULL in place")
    await append(sessions, [new_assessment() for _ in range(3)])
    with behind_the_service(db) as connection:
        connection.execute(text("ALTER TABLE assessment ALTER COLUMN request_body DROP NOT NULL"))
        connection.execute(text("UPDATE assessment SET request_body = NULL WHERE seq = 2"))
    audit = AuditService(
        partial(UnitOfWork, sessions), CheckpointSigner(load_signing_key(tmp_path / "key.pem", create=True))
    )

    online = await audit.verify()
    offline, _ = verify_records([record async for record in await audit.export(ExportRange())])

    for outcome in (online, offline):
        assert outcome.broken is not None
        assert (outcome.broken.seq, outcome.broken.reason, outcome.broken.found) == (
            2,
            Break.REQUEST_BODY,
            "none stored",
        )
