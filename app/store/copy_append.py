"""The fast path of AssessmentRepository.append: decisions inserted on PostgreSQL with one binary COPY (the
same rows, constraints and triggers as an INSERT, without a statement per row), and the rows just inserted
handed back as ORM instances without the constructor's per-attribute events."""

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

import orjson
import psycopg
from psycopg.copy import AsyncLibpqWriter
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, BigInteger, Column, LargeBinary, String, Table, Uuid, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from app.store.models import Assessment
from app.store.types import UTCDateTime

_ASSESSMENT = cast(Table, Assessment.__table__)


def _aware(value: datetime) -> datetime:
    """As UTCDateTime binds a time: an aware instant only."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored")
    return value


def _jsonb(value: Any) -> Jsonb:
    """A document for a JSONB column: PostgreSQL keeps its value, whichever JSON text carries it."""
    return Jsonb(value, dumps=orjson.dumps)


_COPY_TYPE_NAMES: tuple[tuple[type[TypeEngine[Any]], str], ...] = (
    (BigInteger, "int8"),
    (String, "text"),  # Text too; varchar's binary form is text's
    (Uuid, "uuid"),
    (LargeBinary, "bytea"),
)


def _copy_field(column: Column[Any]) -> tuple[str, Callable[[Any], Any] | None]:
    """The PostgreSQL type COPY sends a column as, and how a row's value is converted for it (None: as is)."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return "timestamptz", _aware
    if isinstance(kind, JSON):  # JSON on SQLite, JSONB on PostgreSQL (its variant)
        return "jsonb", _jsonb
    for sql_type, pg_type in _COPY_TYPE_NAMES:
        if isinstance(kind, sql_type):
            return pg_type, None
    raise TypeError(f"no COPY type for column {column.name} ({kind!r})")


_COPY_COLUMNS = list(_ASSESSMENT.columns)
_COPY = "COPY assessment ({}) FROM STDIN (FORMAT BINARY)".format(
    ", ".join(column.name for column in _COPY_COLUMNS)
)
"""Every column of the table, in the binary format: each value sent as its type's own binary form."""
_COPY_TYPES = [_copy_field(column)[0] for column in _COPY_COLUMNS]
_COPY_CONVERSIONS = [
    (position, convert)
    for position, convert in enumerate(_copy_field(column)[1] for column in _COPY_COLUMNS)
    if convert is not None
]
_COPY_VALUES = itemgetter(*(column.name for column in _COPY_COLUMNS))


def _copy_row(values: dict[str, Any]) -> list[Any]:
    row = list(_COPY_VALUES(values))
    for position, convert in _COPY_CONVERSIONS:
        row[position] = convert(row[position])
    return row


class CopyWriter(AsyncLibpqWriter):
    """psycopg's COPY writer, except that a COPY cancelled (by the writer's deadline) is not ended with the
    server: the unit of work discards a cancelled connection, and waiting for a server that has stopped
    answering would outlast the deadline. Any other failure ends the COPY as psycopg does."""

    async def finish(self, exc: BaseException | None = None) -> None:
        if isinstance(exc, asyncio.CancelledError):
            return
        await super().finish(exc)


async def copy_insert(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert the rows with one COPY on the session's connection, in its transaction. Errors are raised
    as SQLAlchemy raises an INSERT's (an IntegrityError for a unique violation, and so on)."""
    connection = await session.connection()
    driver = cast(psycopg.AsyncConnection[Any], (await connection.get_raw_connection()).driver_connection)
    try:
        async with driver.cursor() as cursor, cursor.copy(_COPY, writer=CopyWriter(cursor)) as copy:
            copy.set_types(_COPY_TYPES)
            for values in rows:
                await copy.write_row(_copy_row(values))
    except psycopg.Error as error:
        raise DBAPIError.instance(
            _COPY, None, error, psycopg.Error, hide_parameters=True, dialect=connection.dialect
        ) from error


_NEW_ASSESSMENT = inspect(Assessment).class_manager.new_instance


def loaded_assessment(values: dict[str, Any]) -> Assessment:
    """The record just inserted, as the ORM would load it: its columns' values, no pending changes (not
    through the constructor, whose per-attribute events cost more than the rest of an append). The mappers
    must be configured (``configure_mappers``)."""
    row = _NEW_ASSESSMENT()
    row.__dict__.update(values)
    return row
