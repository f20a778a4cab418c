"""AssessmentRepository.append on each backend: PostgreSQL takes the rows in one binary COPY, SQLite in one
executemany INSERT. Either way every column is stored as given, the rows it returns are the rows stored,
and the store's refusals surface as an INSERT's would."""

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.audit import ChainVerifier, record_hash, to_record
from app.store.copy_append import CopyWriter
from app.store.models import Assessment
from app.store.repositories import AppendConflict, NewAssessment
from app.store.unit_of_work import UnitOfWork, WriteRefused
from tests.factories import subject_id
from tests.integration.test_audit_chain import head

REFUSED_SUBJECT = "APPEND-REFUSED"
POSTGRES_REFUSES_THE_ROW = [
    """CREATE FUNCTION test_refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.subject_id = 'APPEND-REFUSED' THEN
           RAISE EXCEPTION 'row refused by test' USING ERRCODE = 'check_violation';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER test_refuse_row BEFORE INSERT ON assessment
       FOR EACH ROW EXECUTE FUNCTION test_refuse_row()""",
]
POSTGRES_UNDO = ["DROP TRIGGER test_refuse_row ON assessment", "DROP FUNCTION test_refuse_row()"]
SQLITE_REFUSES_THE_ROW = [
    """CREATE TRIGGER test_refuse_row BEFORE INSERT ON assessment
       WHEN NEW.subject_id = 'APPEND-REFUSED' BEGIN SELECT RAISE(ABORT, 'row refused by test'); END""",
]
SQLITE_UNDO = ["DROP TRIGGER test_refuse_row"]


@pytest.fixture
def database_url(own_database: str) -> str:
    """A database of each test's own (on each backend): the records appended here are made up, their
    documents no decision's, and other tests read every record of the shared one."""
    return own_database


@pytest.fixture
def refusing_rows(db: Engine) -> Iterator[None]:
    postgres = db.dialect.name == "postgresql"
    with db.begin() as connection:
        for statement in POSTGRES_REFUSES_THE_ROW if postgres else SQLITE_REFUSES_THE_ROW:
            connection.execute(text(statement))
    yield
    with db.begin() as connection:
        for statement in POSTGRES_UNDO if postgres else SQLITE_UNDO:
            connection.execute(text(statement))


def new_assessment(subject: str | None = None, **changes: Any) -> NewAssessment:
    body = '{"subject_id": "x", "note": "caf\\u00e9"}'
    new = NewAssessment(
        id=uuid.uuid4(),
        client_id="tests-append",
        request_id=None,
        idempotency_key=None,
        subject_id=subject or subject_id(),
        site_id="PIT",
        classifier_name="il6-enrichment",
        classifier_version="1.0.0",
        classifier_digest="sha256:" + "0" * 64,
        eligibility_status="eligible",
        risk_group="low",
        request_media_type="application/json",
        request_sha256=hashlib.sha256(body.encode()).hexdigest(),  # as the chain check will find it
        request_body=body,
        input={"subject_id": "x", "il6": {"value": "1.5", "unit": "pg/mL"}, "classifier": None},
        decision={"eligibility": {"status": "eligible", "reasons": []}, "risk": {"group": "low"}},
        supersedes=None,
        correction_reason=None,
    )
    return replace(new, **changes)


async def append(sessions: async_sessionmaker[AsyncSession], news: list[NewAssessment]) -> list[Assessment]:
    async with UnitOfWork(sessions) as uow:
        rows = await uow.assessments.append(news)
        await uow.commit()
    return rows


COLUMNS = [column.name for column in Assessment.__table__.columns]


async def verifies(sessions: async_sessionmaker[AsyncSession], from_seq: int, to_seq: int) -> bool:
    """Whether the stored records from_seq..to_seq check as the chain check checks them, request bodies
    included."""
    async with UnitOfWork(sessions) as uow:
        verifier = ChainVerifier(await uow.assessments.link_before(from_seq))
        async for rows in uow.assessments.chain(from_seq=from_seq, to_seq=to_seq):
            for row in rows:
                verifier.feed(to_record(dict(row)), row["hash"], row["request_body"])
    verification = verifier.finish()
    return verification.intact and verification.checked == to_seq - from_seq + 1


def stored(row: Assessment) -> dict[str, Any]:
    return {name: getattr(row, name) for name in COLUMNS}


async def test_every_column_is_stored_as_given_and_returned_as_stored(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    plain = new_assessment()
    detailed = new_assessment(
        request_id="req-append-1",
        idempotency_key="key:append:1",
        site_id=None,
        risk_group=None,
        eligibility_status="indeterminate",
        input={"text": 'line\nbreak \U0001f9ea \\ "quoted"', "n": [1, 2.5, None, True, {"z": {}}]},
        decision={"deep": [[{"a": "b"}]], "empty": [], "unicode": "\u00e9\u4e2d"},
        supersedes=plain.id,
        correction_reason="Corrected:\tthe\nunit, caf\u00e9 \U0001f9ea",
    )

    returned = await append(sessions, [plain, detailed])

    async with UnitOfWork(sessions) as uow:  # read while the session holds them
        loaded = []
        for new in (plain, detailed):
            found = await uow.assessments.get(new.id)
            assert found is not None
            loaded.append(stored(found.row))
    for new, row, found_row in zip((plain, detailed), returned, loaded, strict=True):
        expected = {**vars(new), "seq": row.seq, "prev_hash": row.prev_hash, "hash": row.hash}
        assert {name: value for name, value in found_row.items() if name != "recorded_at"} == {
            name: value for name, value in expected.items() if name != "recorded_at"
        }
        assert stored(row) == found_row  # what append returned is what was stored
        assert row.recorded_at.tzinfo is not None
        assert row.hash == record_hash(to_record(found_row))
    assert returned[1].prev_hash == returned[0].hash
    assert returned[1].seq == returned[0].seq + 1
    assert await verifies(sessions, returned[0].seq, returned[-1].seq)


async def test_a_record_the_chain_already_holds_is_an_append_conflict(
    sessions: async_sessionmaker[AsyncSession], db: Engine
) -> None:
    first = new_assessment()
    await append(sessions, [first])
    before = head(db)

    with pytest.raises(AppendConflict) as conflict:
        await append(sessions, [new_assessment(), replace(first, subject_id=subject_id())])

    assert isinstance(conflict.value.__cause__, IntegrityError)  # as SQLAlchemy raises an INSERT's
    assert head(db) == before


@pytest.mark.usefixtures("refusing_rows")
async def test_a_row_the_store_refuses_is_a_write_refused_and_nothing_is_stored(
    sessions: async_sessionmaker[AsyncSession], db: Engine
) -> None:
    before = head(db)
    fine = new_assessment()

    with pytest.raises(WriteRefused):
        await append(sessions, [fine, new_assessment(REFUSED_SUBJECT)])

    assert head(db) == before
    # The connection the refused append used is usable again: the next append goes through.
    [row] = await append(sessions, [fine])
    assert (row.seq, row.prev_hash) == (before[0] + 1, before[1])
    assert await verifies(sessions, row.seq, row.seq)


class _Connection:
    """As much of a psycopg connection as the COPY writer touches: ending a COPY waits on it."""

    def __init__(self) -> None:
        self.pgconn = SimpleNamespace(_encoding="utf-8")
        self.waited = 0

    async def wait(self, generator: Any) -> None:
        self.waited += 1
        generator.close()


class _Cursor:
    def __init__(self) -> None:
        self.connection = _Connection()


async def test_a_cancelled_copy_is_not_ended_with_a_server_that_may_not_answer() -> None:
    """Cancelled by the writer's deadline, the COPY is left to the unit of work, which discards the
    connection; ending it would wait for the server, which may be the very thing that stopped answering."""
    cursor = _Cursor()
    writer = CopyWriter(cursor)  # type: ignore[arg-type]

    await writer.finish(asyncio.CancelledError())
    assert cursor.connection.waited == 0

    await writer.finish(ValueError("a row that cannot be sent"))  # ended as psycopg ends it
    assert cursor.connection.waited == 1
