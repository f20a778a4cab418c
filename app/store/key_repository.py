"""API keys in the store: read, listed, added and their history recorded; the per-request lookup of many
keys at once runs through psycopg directly on PostgreSQL."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ARRAY, String, Table, any_, bindparam, func, inspect, literal, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.direct import DirectStatement, fetch_all, on_postgresql
from app.store.models import ApiKey, ApiKeyEvent
from app.store.repositories import is_unique_violation
from app.store.types import UTCDateTime, as_utc, utcnow

_API_KEYS = cast(Table, ApiKey.__table__)
_KEY_COLUMNS = [column.name for column in _API_KEYS.columns]
_KEY_TIMES = frozenset(name for name in _KEY_COLUMNS if isinstance(_API_KEYS.c[name].type, UTCDateTime))
_DIRECT_KEYS = DirectStatement.of(
    select(utcnow(), *_API_KEYS.columns).select_from(
        select(literal(1).label("one"))
        .subquery()
        .outerjoin(_API_KEYS, _API_KEYS.c.key_id == any_(sql_cast(bindparam("key_ids"), ARRAY(String))))
    )
)
"""The database's clock and the keys asked for (NULLs when none is), as ``get_many_with_now`` reads them
through SQLAlchemy."""
_NEW_KEY = inspect(ApiKey).class_manager.new_instance


def _loaded_key(values: Sequence[Any]) -> ApiKey:
    """A key as the ORM would load it (``loaded_assessment``'s way), its times in UTC as ``UTCDateTime``'s."""
    key = _NEW_KEY()
    key.__dict__.update(
        (name, as_utc(value) if name in _KEY_TIMES and value is not None else value)
        for name, value in zip(_KEY_COLUMNS, values, strict=True)
    )
    return key


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, key_id: str) -> ApiKey | None:
        return await self._session.get(ApiKey, key_id)

    async def get_with_now(self, key_id: str, *, for_update: bool = False) -> tuple[ApiKey, datetime] | None:
        """The key and the database's clock, in one round trip (expiry is judged by the clock that set it);
        ``for_update``: locked until commit, so that two changes to one key take turns (SQLite's IMMEDIATE
        transaction already holds the write lock)."""
        statement = select(ApiKey, utcnow()).where(ApiKey.key_id == key_id)
        if for_update:
            statement = statement.with_for_update(of=ApiKey)
        row = (await self._session.execute(statement)).first()
        return None if row is None else (row[0], row[1])

    async def get_many_with_now(self, key_ids: Sequence[str]) -> tuple[datetime, Sequence[ApiKey]]:
        """The database's clock and those of the keys that exist, in one round trip."""
        if on_postgresql(self._session):  # every request's: run directly
            found = await fetch_all(self._session, _DIRECT_KEYS, {"key_ids": list(key_ids)})
            return as_utc(found[0][0]), [_loaded_key(row[1:]) for row in found if row[1] is not None]
        statement = select(utcnow(), ApiKey).select_from(
            select(literal(1).label("one")).subquery().outerjoin(ApiKey, ApiKey.key_id.in_(key_ids))
        )
        rows = (await self._session.execute(statement)).all()
        return rows[0][0], [row[1] for row in rows if row[1] is not None]

    async def list(self) -> Sequence[ApiKey]:
        return (await self._session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.name))).all()

    async def count(self) -> int:
        return int((await self._session.execute(select(func.count()).select_from(ApiKey))).scalar_one())

    async def add(self, key: ApiKey) -> None:
        """Insert a key; raises NameTaken when its name is already used (by any key, ever)."""
        self._session.add(key)
        try:
            await self._session.flush()
        except IntegrityError as error:
            if is_unique_violation(error):
                raise NameTaken("a key with this name exists") from error
            raise

    async def history(self, key_id: str) -> Sequence[ApiKeyEvent]:
        statement = select(ApiKeyEvent).where(ApiKeyEvent.key_id == key_id).order_by(ApiKeyEvent.id)
        return (await self._session.scalars(statement)).all()

    async def record(self, event: ApiKeyEvent) -> None:
        self._session.add(event)
        await self._session.flush()

    async def now(self) -> datetime:
        """The database clock: key times and expiry checks use the same clock as the audit trail."""
        return (await self._session.execute(select(utcnow()))).scalar_one()


class NameTaken(Exception):
    """Another key already has this name."""
