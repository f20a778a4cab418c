"""The audit trail's queries. Repositories take a session and only flush; the unit of work commits."""

import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Row,
    RowMapping,
    Table,
    func,
    insert,
    literal,
    select,
    true,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import SessionTransaction, aliased, configure_mappers

from app.domain.audit import ChainHead, next_link, record_hash, to_record
from app.store.copy_append import copy_insert, loaded_assessment
from app.store.direct import DirectStatement, fetch_all, fetch_each, on_postgresql
from app.store.models import Assessment
from app.store.seq_pages import SeqPages
from app.store.types import as_utc, utcnow

CHAIN_LOCK = 0x494C_365F_4155_4454
"""The PostgreSQL advisory lock (one bigint key) held from reading the chain head to commit."""


class AppendConflict(Exception):
    """A record written at the same moment claimed the same link or superseded the same decision."""


@dataclass(frozen=True)
class NewAssessment:
    id: uuid.UUID
    client_id: str
    request_id: str | None
    idempotency_key: str | None
    subject_id: str
    site_id: str | None
    classifier_name: str
    classifier_version: str
    classifier_digest: str
    eligibility_status: str
    risk_group: str | None
    request_media_type: str
    request_sha256: str
    request_body: str
    input: dict[str, Any]
    decision: dict[str, Any]
    supersedes: uuid.UUID | None
    correction_reason: str | None


@dataclass(frozen=True)
class StoredAssessment:
    row: Assessment
    superseded_by: uuid.UUID | None


_ASSESSMENT = cast(Table, Assessment.__table__)
_INSERT = insert(_ASSESSMENT)
_LATEST = select(Assessment.seq, Assessment.hash, Assessment.recorded_at).order_by(Assessment.seq.desc())
_HEAD_SUBQUERY = _LATEST.limit(1).subquery()
_HEAD = select(
    utcnow().label("now"), _HEAD_SUBQUERY.c.seq, _HEAD_SUBQUERY.c.hash, _HEAD_SUBQUERY.c.recorded_at
).select_from(select(literal(1).label("one")).subquery().outerjoin(_HEAD_SUBQUERY, true()))
"""The database's clock and the chain head, in one round trip; the head's columns are NULL when empty."""
_LOCK_CHAIN = select(func.pg_advisory_xact_lock(CHAIN_LOCK))
_DIRECT_LOCK_CHAIN = DirectStatement.of(_LOCK_CHAIN)
_DIRECT_HEAD = DirectStatement.of(_HEAD)
_SUCCESSOR = aliased(Assessment)
_WITH_SUCCESSOR = select(Assessment, _SUCCESSOR.id).outerjoin(
    _SUCCESSOR, _SUCCESSOR.supersedes == Assessment.id
)


def _head_of(row: tuple[Any, ...]) -> tuple[ChainHead, datetime]:
    """The chain head and the clock from a row of ``_HEAD`` as psycopg reads it."""
    now, seq, hash_, recorded_at = row
    head = ChainHead.empty() if seq is None else ChainHead(seq, hash_, as_utc(recorded_at))
    return head, as_utc(now)


def is_unique_violation(error: IntegrityError) -> bool:
    """PostgreSQL's SQLSTATE 23505, or SQLite's UNIQUE constraint message."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    return sqlstate == "23505" or (sqlstate is None and "UNIQUE constraint failed" in str(error.orig))


def _stored(row: Row[Assessment, uuid.UUID]) -> StoredAssessment:
    # The successor's id is None where the outer join found none.
    return StoredAssessment(row[0], row[1])


class AssessmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._chain_locked_in: SessionTransaction | None = None

    @property
    def _on_postgresql(self) -> bool:
        return on_postgresql(self._session)

    async def lock_chain(self) -> None:
        """Take the chain's turn now, until commit; asked once per transaction, held from then on.

        Taken early by a correction, so that checking the decision it supersedes and appending happen in
        one turn; SQLite's IMMEDIATE transaction already holds the database's write lock.
        """
        if not self._on_postgresql:
            return
        transaction = self._session.sync_session.get_transaction()
        if transaction is not None and transaction is self._chain_locked_in:
            return  # held already: asking again would cost a round trip and change nothing
        await fetch_all(self._session, _DIRECT_LOCK_CHAIN)
        self._chain_locked_in = self._session.sync_session.get_transaction()

    async def take_turn(self) -> "Turn":
        """Take the chain's turn (as ``lock_chain``) and read the chain head and the database's clock (as
        ``append`` would). On PostgreSQL the two go as one message (``fetch_each``), the head read after the
        lock is granted, with a snapshot of its own: it sees every append committed before, as when they
        were sent one by one. ``append(news, turn)`` then links to this head.
        """
        if self._on_postgresql:
            _, [row] = await fetch_each(self._session, [_DIRECT_LOCK_CHAIN, _DIRECT_HEAD])
            self._chain_locked_in = self._session.sync_session.get_transaction()
            head, now = _head_of(row)
        else:
            head, now = await self._head()
        return Turn(head, now, self._session.sync_session.get_transaction())

    async def append(self, news: Sequence[NewAssessment], turn: "Turn | None" = None) -> list[Assessment]:
        """Link decisions to the chain head in order and insert them, stamped by the database clock.

        On PostgreSQL a transaction-scoped advisory lock makes appends from every process take turns from
        here until commit; SQLite transactions begin IMMEDIATE, which does the same (app/store/database.py).
        The unique sequence number and previous hash refuse a fork even if that were bypassed. Many
        decisions share one turn, one clock reading and one round trip for their rows: on PostgreSQL one
        binary COPY (the same rows, constraints and triggers as an INSERT, without a statement per row).
        """
        if turn is None:
            await self.lock_chain()
            head, now = await self._head()
        elif turn.transaction is not self._session.sync_session.get_transaction():
            raise ValueError("a turn links only appends within the transaction that took it")
        else:
            head, now = turn.head, turn.now
        rows: list[dict[str, Any]] = []
        for new in news:
            seq, prev_hash, recorded_at = next_link(head, now)
            # vars(), not asdict(): asdict deep-copies the two JSON documents on every insert.
            values = {**vars(new), "seq": seq, "prev_hash": prev_hash, "recorded_at": recorded_at}
            values["hash"] = record_hash(to_record(values))
            rows.append(values)
            head = ChainHead(seq, values["hash"], recorded_at)
        if not rows:
            return []
        try:
            if self._on_postgresql:
                await copy_insert(self._session, rows)
            else:
                await self._session.execute(_INSERT, rows)
        except IntegrityError as error:
            if is_unique_violation(error):
                raise AppendConflict("a record written at the same moment conflicts with this one") from error
            raise
        configure_mappers()  # a no-op once configured (as the query for the head has them)
        return [loaded_assessment(values) for values in rows]

    async def _head(self) -> tuple[ChainHead, datetime]:
        """The chain's head and the database's clock."""
        if self._on_postgresql:
            return _head_of((await fetch_all(self._session, _DIRECT_HEAD))[0])
        now, seq, hash_, recorded_at = (await self._session.execute(_HEAD)).one()
        return (ChainHead.empty() if seq is None else ChainHead(seq, hash_, recorded_at)), now

    async def get(self, assessment_id: uuid.UUID) -> StoredAssessment | None:
        statement = _WITH_SUCCESSOR.where(Assessment.id == assessment_id)
        row = (await self._session.execute(statement)).one_or_none()
        return None if row is None else _stored(row)

    async def list_for_subject(
        self,
        subject_id: str,
        *,
        limit: int,
        before_seq: int | None = None,
        sites: frozenset[str] | None = None,
    ) -> Sequence[StoredAssessment]:
        """A subject's decisions, newest first, from just before ``before_seq`` (keyset pagination), of
        ``sites`` only when given."""
        statement = _WITH_SUCCESSOR.where(Assessment.subject_id == subject_id)
        if sites is not None:
            statement = statement.where(Assessment.site_id.in_(sorted(sites)))
        if before_seq is not None:
            statement = statement.where(Assessment.seq < before_seq)
        statement = statement.order_by(Assessment.seq.desc()).limit(limit)
        return [_stored(row) for row in (await self._session.execute(statement)).all()]

    async def superseded_ids(self) -> set[uuid.UUID]:
        """The ids of every decision a correction has superseded."""
        statement = select(Assessment.supersedes).where(Assessment.supersedes.is_not(None))
        return {row for row in (await self._session.scalars(statement)).all() if row is not None}

    async def head(self) -> tuple[datetime, ChainHead]:
        """The database's clock and the newest record's link fields."""
        now, seq, hash_, recorded_at = (await self._session.execute(_HEAD)).one()
        return now, ChainHead.empty() if seq is None else ChainHead(seq, hash_, recorded_at)

    async def link_before(self, seq: int) -> ChainHead | None:
        """The link fields of the record just before ``seq`` (the empty chain's before seq 1)."""
        if seq <= 1:
            return ChainHead.empty()
        statement = _LATEST.where(Assessment.seq == seq - 1).limit(1)
        # first(): where the owner has stored two records under one seq, the chain check finds them itself.
        row = (await self._session.execute(statement)).first()
        return None if row is None else ChainHead(row.seq, row.hash, row.recorded_at)

    async def chain(
        self,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        classifier_name: str | None = None,
        batch_size: int = 1000,
    ) -> AsyncGenerator[Sequence[RowMapping]]:
        """Rows in sequence order, a batch at a time (``SeqPages``), within the given bounds (and of one
        classifier's decisions, when named).

        Plain rows, not ORM objects: a chain of millions is read without an identity map.
        """
        pages = SeqPages(from_seq, batch_size)
        while not pages.done:
            batch = await self.chain_page(
                pages, to_seq=to_seq, from_time=from_time, to_time=to_time, classifier_name=classifier_name
            )
            if batch:
                yield batch

    async def chain_page(
        self,
        pages: SeqPages,
        *,
        to_seq: int | None = None,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        classifier_name: str | None = None,
    ) -> Sequence[RowMapping]:
        """The next page of ``pages`` within the given bounds: empty, and ``pages.done``, at the end."""
        columns = _ASSESSMENT.c
        statement = select(_ASSESSMENT).where(columns.seq >= pages.start)
        if to_seq is not None:
            statement = statement.where(columns.seq <= to_seq)
        if from_time is not None:
            statement = statement.where(columns.recorded_at >= from_time)
        if to_time is not None:
            statement = statement.where(columns.recorded_at < to_time)
        if classifier_name is not None:
            statement = statement.where(columns.classifier_name == classifier_name)
        statement = statement.order_by(columns.seq).limit(pages.limit)
        return pages.take((await self._session.execute(statement)).mappings().all(), _seq_of)


def _seq_of(row: RowMapping) -> int:
    seq: int = row["seq"]
    return seq


@dataclass(frozen=True)
class Turn:
    """The chain's turn, taken by ``AssessmentRepository.take_turn``: the chain head and the database's
    clock read in the turn, and the transaction that holds it."""

    head: ChainHead
    now: datetime
    transaction: SessionTransaction | None
