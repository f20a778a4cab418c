"""Idempotency-Key bindings: which decision a client's key made, and each key's claim while a request
with it is being recorded. Repositories take a session and only flush; the unit of work commits."""

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ARRAY,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.copy_append import KEY_BINDINGS, copy_insert
from app.store.direct import DirectStatement, fetch_all, on_postgresql
from app.store.models import IdempotencyKey
from app.store.types import as_utc

IDEMPOTENCY_LOCK_SPACE = 0x494C_3649
"""The first of the two int4 keys of a per-(client, key) advisory lock; that key space is apart from
``app.store.repositories.CHAIN_LOCK``'s."""


def _key_lock(client_id: str, key: str) -> int:
    digest = hashlib.sha256(f"{client_id}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


@dataclass(frozen=True, slots=True)
class KeyBinding:
    """What a (client, key) pair is bound to: the first request's fingerprint and the decision it made."""

    fingerprint: str
    assessment_id: uuid.UUID
    created_at: datetime


class NewKeyBinding(NamedTuple):
    """A (client, key) pair to bind to its request's fingerprint and decision, bound when the decision was
    recorded (``created_at``: the decision's ``recorded_at``, the database's clock)."""

    client_id: str
    key: str
    fingerprint: str
    assessment_id: uuid.UUID
    created_at: datetime


# Each statement is built once, with the same text for any number of keys: SQLAlchemy compiles it once, and
# PostgreSQL may prepare it, instead of a new statement per batch size (and per key, for the locks).
_KEYS = cast(Table, IdempotencyKey.__table__)
_LOCK_KEY_ROWS = (
    func.unnest(sql_cast(bindparam("lock_keys"), ARRAY(Integer)))
    .table_valued("lock_key", with_ordinality="position")
    .render_derived(name="claimed")
)
_TRY_LOCK_KEYS = select(
    func.pg_try_advisory_xact_lock(literal(IDEMPOTENCY_LOCK_SPACE, Integer), _LOCK_KEY_ROWS.c.lock_key)
).order_by(_LOCK_KEY_ROWS.c.position)
"""One row per key, in the order given: whether this transaction now holds that key's lock."""
_BINDING_COLUMNS = (
    _KEYS.c.client_id,
    _KEYS.c.key,
    _KEYS.c.fingerprint,
    _KEYS.c.assessment_id,
    _KEYS.c.created_at,
)
_WANTED = (
    func.unnest(sql_cast(bindparam("client_ids"), ARRAY(String)), sql_cast(bindparam("keys"), ARRAY(String)))
    .table_valued("client_id", "key")
    .render_derived(name="wanted")
)
_BINDINGS = select(*_BINDING_COLUMNS).join(
    _WANTED, and_(_KEYS.c.client_id == _WANTED.c.client_id, _KEYS.c.key == _WANTED.c.key)
)
"""On PostgreSQL: one primary-key lookup per (client, key). As ``(client_id, key) IN (...)``, a list of more
than a few dozen pairs from one client was planned as a scan of all that client's keys, which grows with the
store (a batch of 250 took 235 ms among 82,000 keys, against 1 ms here)."""
_BINDINGS_IN = select(*_BINDING_COLUMNS).where(
    tuple_(_KEYS.c.client_id, _KEYS.c.key).in_(bindparam("refs", expanding=True))
)
"""On SQLite, which has no arrays to join."""
_FORGET = delete(_KEYS).where(_KEYS.c.client_id == _WANTED.c.client_id, _KEYS.c.key == _WANTED.c.key)
_FORGET_IN = delete(_KEYS).where(
    tuple_(_KEYS.c.client_id, _KEYS.c.key).in_(bindparam("refs", expanding=True))
)
"""As ``_BINDINGS`` and ``_BINDINGS_IN``: the keys given, and only them."""
_BIND = insert(_KEYS)
"""On SQLite; PostgreSQL takes a COPY."""
_CLAIMED_ROWS = (
    func.unnest(
        sql_cast(bindparam("lock_keys"), ARRAY(Integer)),
        sql_cast(bindparam("client_ids"), ARRAY(String)),
        sql_cast(bindparam("keys"), ARRAY(String)),
    )
    .table_valued("lock_key", "client_id", "key", with_ordinality="position")
    .render_derived(name="claimed")
)
_CLAIM = (
    select(
        func.pg_try_advisory_xact_lock(literal(IDEMPOTENCY_LOCK_SPACE, Integer), _CLAIMED_ROWS.c.lock_key),
        *_BINDING_COLUMNS,
    )
    .select_from(
        _CLAIMED_ROWS.outerjoin(
            _KEYS, and_(_KEYS.c.client_id == _CLAIMED_ROWS.c.client_id, _KEYS.c.key == _CLAIMED_ROWS.c.key)
        )
    )
    .order_by(_CLAIMED_ROWS.c.position)
)
"""``_TRY_LOCK_KEYS`` and ``_BINDINGS`` in one statement: one row per key, in the order given, whether this
transaction now holds it and, when it has one, its binding."""
_DIRECT_TRY_LOCK_KEYS = DirectStatement.of(_TRY_LOCK_KEYS)
_DIRECT_BINDINGS = DirectStatement.of(_BINDINGS)
_DIRECT_CLAIM = DirectStatement.of(_CLAIM)


def _lock_keys(keys: Sequence[tuple[str, str]]) -> list[int]:
    return [_key_lock(*key) for key in keys]


def _wanted(keys: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    client_ids, names = zip(*keys, strict=True)
    return {"client_ids": list(client_ids), "keys": list(names)}


def _bindings(rows: Sequence[tuple[Any, ...]]) -> dict[tuple[str, str], KeyBinding]:
    return {
        (client_id, key): KeyBinding(fingerprint, assessment_id, as_utc(created_at))
        for client_id, key, fingerprint, assessment_id, created_at in rows
    }


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    @property
    def _on_postgresql(self) -> bool:
        return on_postgresql(self._session)

    async def try_lock(self, keys: Sequence[tuple[str, str]]) -> list[bool]:
        """Claim each (client, key) for this transaction, in one round trip; False for a key another
        transaction holds.

        On SQLite the transaction already holds the database's single write lock, so no one else can.
        """
        if not keys or not self._on_postgresql:
            return [True] * len(keys)
        held = await fetch_all(self._session, _DIRECT_TRY_LOCK_KEYS, {"lock_keys": _lock_keys(keys)})
        return [bool(one) for (one,) in held]

    async def get(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], KeyBinding]:
        """The bindings of those (client, key) pairs that have one."""
        if not keys:
            return {}
        if self._on_postgresql:
            return _bindings(await fetch_all(self._session, _DIRECT_BINDINGS, _wanted(keys)))
        rows = await self._session.execute(_BINDINGS_IN, {"refs": list(keys)})
        return {
            (client_id, key): KeyBinding(fingerprint, assessment_id, created_at)
            for client_id, key, fingerprint, assessment_id, created_at in rows
        }

    async def claim(
        self, keys: Sequence[tuple[str, str]]
    ) -> tuple[list[bool], dict[tuple[str, str], KeyBinding]]:
        """``try_lock`` and ``get`` at once: on PostgreSQL one statement, for a transaction that holds the
        chain's turn (every binding is written in one, so none changes between the two)."""
        if not keys or not self._on_postgresql:
            return await self.try_lock(keys), await self.get(keys)
        rows = await fetch_all(self._session, _DIRECT_CLAIM, {"lock_keys": _lock_keys(keys), **_wanted(keys)})
        return [bool(row[0]) for row in rows], _bindings([row[1:] for row in rows if row[1] is not None])

    async def forget(self, keys: Sequence[tuple[str, str]]) -> None:
        if not keys:
            return
        if self._on_postgresql:
            await self._session.execute(_FORGET, _wanted(keys))
        else:
            await self._session.execute(_FORGET_IN, {"refs": list(keys)})

    async def add(self, bindings: Sequence[NewKeyBinding]) -> None:
        """Bind each (client, key) to its request's fingerprint and its decision: on PostgreSQL with one
        COPY, as the decisions themselves are inserted."""
        if bindings:
            rows = [binding._asdict() for binding in bindings]
            if self._on_postgresql:
                await copy_insert(self._session, rows, KEY_BINDINGS)
            else:
                await self._session.execute(_BIND, rows)
