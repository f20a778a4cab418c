"""Statements run by psycopg directly, on PostgreSQL, in the session's own transaction (or, in autocommit,
on its own): for the few run for every group the audit writer appends and for every request's key lookup.
Statements that need nothing from one another's results go in one message (``fetch_each``).

Each is written once as a SQLAlchemy statement and compiled once, at import, to PostgreSQL's SQL; only the
execution skips SQLAlchemy (its execution context, result machinery and greenlet switches), which cost two
to three times what psycopg itself costs per statement. Values come back as psycopg reads them: a caller
converts what a column type would have converted (UTC for a timestamp, say). Errors are raised as SQLAlchemy
raises them (``DBAPIError`` and its subclasses), so the unit of work treats them alike.
"""

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement

_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves its __init__ untyped


@dataclass(frozen=True, slots=True)
class DirectStatement:
    """A statement's PostgreSQL text and the values of its parameters as compiled: its literals' values,
    and None for each parameter a caller gives."""

    sql: str
    fixed: Mapping[str, Any]

    @classmethod
    def of(cls, statement: ClauseElement, column_keys: Sequence[str] | None = None) -> "DirectStatement":
        """``column_keys``: the columns an INSERT's parameters name."""
        compiled = statement.compile(
            dialect=_DIALECT, column_keys=None if column_keys is None else list(column_keys)
        )
        return cls(str(compiled), dict(compiled.params))

    def parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.fixed, **given}


def on_postgresql(session: AsyncSession) -> bool:
    """Whether the session is bound to PostgreSQL, where these statements run (SQLite runs SQLAlchemy's)."""
    return session.get_bind().dialect.name == "postgresql"


async def driver_connection(session: AsyncSession) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under the session, in the session's transaction (begun if need be)."""
    transaction = session.sync_session.get_transaction()
    kept = session.info.get(_DRIVER)
    if transaction is not None and kept is not None and kept[0]() is transaction:
        return cast(psycopg.AsyncConnection[Any], kept[1])
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    # The transaction by a weak reference: a strong one would make the session a reference cycle
    # (session, info, transaction, session) that only the garbage collector frees.
    session.info[_DRIVER] = (weakref.ref(session.sync_session.get_transaction()), raw.driver_connection)
    return cast(psycopg.AsyncConnection[Any], raw.driver_connection)


_DRIVER = "il6_driver_connection"


def as_sqlalchemy_error(statement: str, error: psycopg.Error) -> DBAPIError:
    """What SQLAlchemy raises for psycopg's ``error`` (an IntegrityError for a unique violation, say)."""
    return cast(
        DBAPIError,
        DBAPIError.instance(statement, None, error, psycopg.Error, hide_parameters=True, dialect=_DIALECT),
    )


async def fetch_all(
    session: AsyncSession, statement: DirectStatement, given: Mapping[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """Every row the statement returns, as tuples."""
    driver = await driver_connection(session)
    try:
        async with driver.cursor() as cursor:
            await cursor.execute(statement.sql, statement.parameters(given or {}))
            return await cursor.fetchall()
    except psycopg.Error as error:
        raise as_sqlalchemy_error(statement.sql, error) from error


async def fetch_each(
    session: AsyncSession, statements: Sequence[DirectStatement]
) -> list[list[tuple[Any, ...]]]:
    """Every row each statement returns, as tuples, statement by statement, for one round trip.

    The statements go as one message (PostgreSQL's simple query protocol), so each must be whole: only its
    own literals, quoted into the text by psycopg, and no value of a caller's, which would then reach the
    server's log of a failed statement. PostgreSQL runs them one after another, each at READ COMMITTED with
    a snapshot of its own, as one at a time would; the first that fails ends the message, and its error is
    raised. One message, not a pipeline of several: a connection that goes silent partway through leaves
    its session waiting for a command, where ``idle_in_transaction_session_timeout`` ends it, never in the
    middle of a pipeline, where no timeout does.
    """
    for statement in statements:
        if any(value is None for value in statement.fixed.values()):
            raise ValueError("a statement sent together with others carries its own values only")
    driver = await driver_connection(session)
    quoting = psycopg.AsyncClientCursor(driver)
    text = ";\n".join(quoting.mogrify(statement.sql, statement.fixed) for statement in statements)
    try:
        async with driver.cursor() as cursor:
            await cursor.execute(text.encode(), prepare=False)
            results = [await cursor.fetchall()]
            while cursor.nextset():
                results.append(await cursor.fetchall())
    except psycopg.Error as error:
        raise as_sqlalchemy_error(text, error) from error
    if len(results) != len(statements):
        raise ValueError(f"{len(statements)} statements gave {len(results)} results")
    return results
