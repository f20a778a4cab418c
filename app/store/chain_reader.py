"""The audit trail read back as records, for checking the chain.

Verification reads every record, so the cost per row decides how fast a chain of millions is checked. On
PostgreSQL the rows are read through psycopg directly, on the session's own connection and inside its
transaction, with loaders of this cursor's own: a uuid arrives as the text PostgreSQL writes for it (the
form a record holds), and so does a JSONB document, which is then decoded by orjson. SQLAlchemy's result
rows, its type processing and the standard library's JSON decoder cost several times as much per row, and
a loader written in Python, called by psycopg for each document, twice as much as psycopg's own text
loader and one orjson call (bench/RESULTS.md). On SQLite the repository's own read is used.

Either way the record is built here from the columns as stored, never from anything the database computed:
the hash check in ``app.domain.audit`` decides whether they are what was hashed.
"""

import json
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from typing import Any, cast

import orjson
import psycopg
from psycopg import sql
from psycopg.types.string import TextLoader
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.collector import collector_paused
from app.domain.audit import RECORD_FIELDS, canonical_time, to_record
from app.store.models import Assessment
from app.store.repositories import AssessmentRepository
from app.store.seq_pages import SeqPages

ChainEntry = tuple[dict[str, Any], str, str | None, bool]
"""A stored record (``RECORD_FIELDS``, ids and times as canonical strings), its stored hash, the request
body it was decided from, and whether the record holds only values orjson writes as themselves (the
``exact`` of ``app.domain.audit.hashes_to``)."""

_COLUMNS = (*RECORD_FIELDS, "hash", "request_body")
_RECORDED_AT = RECORD_FIELDS.index("recorded_at")
_DOCUMENTS = tuple((name, RECORD_FIELDS.index(name)) for name in ("input", "decision"))
"""The JSONB columns (never NULL), by name and place in a row."""
_QUERY = sql.SQL("SELECT {columns} FROM {table} WHERE seq >= %s AND seq <= %s ORDER BY seq LIMIT %s").format(
    columns=sql.SQL(", ").join(sql.Identifier(name) for name in _COLUMNS),
    table=sql.Identifier(Assessment.__tablename__),
)
_UNBOUNDED = 2**63 - 1
"""The largest bigint: the upper bound of a read to the chain's end."""


class ChainReader:
    """Records of the audit trail in sequence order, within one session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def entries(
        self, *, from_seq: int = 1, to_seq: int | None = None, batch_size: int = 1000
    ) -> AsyncGenerator[Iterator[ChainEntry]]:
        """The records from ``from_seq`` to ``to_seq`` (or the end), a batch at a time (``SeqPages``).

        Each record is made from its row as the batch is iterated: a record checked and
        dropped before the next is made leaves the garbage collector nothing to count, where a whole batch
        of records made at once was scanned by it as a batch (bench/RESULTS.md). Iterate each batch once,
        before asking for the next.
        """
        if self._session.get_bind().dialect.name != "postgresql":
            async for rows in AssessmentRepository(self._session).chain(
                from_seq=from_seq, to_seq=to_seq, batch_size=batch_size
            ):
                mappings = cast(Sequence[Mapping[str, Any]], rows)
                yield ((to_record(row), row["hash"], row["request_body"], False) for row in mappings)
            return
        connection = await (await self._session.connection()).get_raw_connection()
        driver = connection.driver_connection
        if not isinstance(driver, psycopg.AsyncConnection):
            raise TypeError(f"the audit trail is read through psycopg, not {type(driver).__name__}")
        last = _UNBOUNDED if to_seq is None else to_seq
        pages = SeqPages(from_seq, batch_size)
        try:
            async with driver.cursor() as cursor:
                cursor.adapters.register_loader("uuid", TextLoader)
                cursor.adapters.register_loader("jsonb", TextLoader)
                while not pages.done:
                    await cursor.execute(_QUERY, (pages.start, last, pages.limit))
                    # fetchall only converts the rows execute received (it waits for nothing outside
                    # pipeline mode): a block that never suspends, as collector_paused requires.
                    with collector_paused():
                        page = pages.take(await cursor.fetchall(), _seq_of)
                    if page:
                        yield map(_entry, page)
        except psycopg.Error as error:  # as SQLAlchemy raises it: the unit of work reports the store down
            raise DBAPIError.instance(None, None, error, psycopg.Error) from error


def _seq_of(row: tuple[Any, ...]) -> int:
    seq: int = row[0]
    return seq


def _entry(row: tuple[Any, ...]) -> ChainEntry:
    """The record of a row: its columns as psycopg read them (``entries``' loaders), its time as the chain
    writes it, and its JSONB documents decoded by orjson, or by the standard library where orjson refuses
    one (a number beyond a double's range, nesting deeper than 1024).

    A record is exact when orjson decoded both documents: its other values are strings, integers and None.
    The standard library reads a number beyond a double's range as infinity, which orjson writes as null:
    such a record is not exact, and its hash check reads its bytes back (tests/integration/
    test_chain_reader.py). orjson reads an integer beyond 64 bits as a float where the standard library
    keeps it exact; no record was hashed with one (RFC 8785 writes integers within 2**53 only, and the
    documents the service writes hold no numbers at all: values are decimal text, ``app.service.
    documents``), so it was put there afterwards, where the hashed bytes held no number, and fails the
    check either way (tests/integration/test_audit_chain.py edits one in).
    """
    record = dict(zip(RECORD_FIELDS, row, strict=False))
    record["recorded_at"] = canonical_time(row[_RECORDED_AT])
    exact = True
    for name, index in _DOCUMENTS:
        try:
            record[name] = orjson.loads(row[index])
        except orjson.JSONDecodeError:
            record[name] = json.loads(row[index])
            exact = False
    return record, row[-2], row[-1], exact
