"""The fast path of the audit writer's inserts on PostgreSQL: a group's decisions, and then their
Idempotency-Key bindings, each inserted with one binary COPY (the same rows, constraints and triggers as an
INSERT, without a statement per row); and the decisions just inserted handed back as ORM instances without
the constructor's per-attribute events."""

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

import orjson
import psycopg
from psycopg.copy import AsyncLibpqWriter
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, BigInteger, Column, LargeBinary, String, Table, Uuid, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from app.store.direct import as_sqlalchemy_error, driver_connection
from app.store.models import Assessment, IdempotencyKey
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


@dataclass(frozen=True)
class CopyTarget:
    """A table's columns as one binary COPY sends them: each value as its type's own binary form."""

    statement: str
    types: list[str]
    conversions: list[tuple[int, Callable[[Any], Any]]]
    values: Callable[[dict[str, Any]], tuple[Any, ...]]

    @classmethod
    def of(cls, table: Table) -> "CopyTarget":
        """Every column of ``table``; a row gives a value for each, by column name."""
        columns = list(table.columns)
        fields = [_copy_field(column) for column in columns]
        return cls(
            statement="COPY {} ({}) FROM STDIN (FORMAT BINARY)".format(
                table.name, ", ".join(column.name for column in columns)
            ),
            types=[pg_type for pg_type, _ in fields],
            conversions=[(position, convert) for position, (_, convert) in enumerate(fields) if convert],
            values=itemgetter(*(column.name for column in columns)),
        )

    def row(self, values: dict[str, Any]) -> list[Any]:
        row = list(self.values(values))
        for position, convert in self.conversions:
            row[position] = convert(row[position])
        return row


ASSESSMENTS = CopyTarget.of(_ASSESSMENT)
KEY_BINDINGS = CopyTarget.of(cast(Table, IdempotencyKey.__table__))


class CopyWriter(AsyncLibpqWriter):
    """psycopg's COPY writer, except that a COPY cancelled (by the writer's deadline) is not ended with the
    server: the unit of work discards a cancelled connection, and waiting for a server that has stopped
    answering would outlast the deadline. Any other failure ends the COPY as psycopg does."""

    async def finish(self, exc: BaseException | None = None) -> None:
        if isinstance(exc, asyncio.CancelledError):
            return
        await super().finish(exc)


async def copy_insert(
    session: AsyncSession, rows: Sequence[dict[str, Any]], target: CopyTarget = ASSESSMENTS
) -> None:
    """Insert the rows into ``target`` with one COPY on the session's connection, in its transaction. Errors
    are raised as SQLAlchemy raises an INSERT's (an IntegrityError for a unique violation, and so on)."""
    driver = await driver_connection(session)
    try:
        async with (
            driver.cursor() as cursor,
            cursor.copy(target.statement, writer=CopyWriter(cursor)) as copy,
        ):
            copy.set_types(target.types)
            for values in rows:
                await copy.write_row(target.row(values))
    except psycopg.Error as error:
        raise as_sqlalchemy_error(target.statement, error) from error


_NEW_ASSESSMENT = inspect(Assessment).class_manager.new_instance


def loaded_assessment(values: dict[str, Any]) -> Assessment:
    """The record just inserted, as the ORM would load it: its columns' values, no pending changes (not
    through the constructor, whose per-attribute events cost more than the rest of an append). The mappers
    must be configured (``configure_mappers``)."""
    row = _NEW_ASSESSMENT()
    row.__dict__.update(values)
    return row
