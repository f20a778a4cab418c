"""API keys: issue, authenticate, list, expire and revoke; every change kept in the key's history.

A key is looked up on every request, so a revoked or expired key is refused at once, by every server
process. Only the SHA-256 of a secret is stored; the secret is shown once, when the key is created.
"""

import asyncio
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from app.domain.access import (
    ALL_SITES,
    KEY_NAME,
    IssuedKey,
    Principal,
    Scope,
    SiteAccess,
    issue_key,
    key_id_of,
    key_matches,
)
from app.domain.errors import InvalidInput
from app.service.coalescing import Coalescer
from app.service.errors import Forbidden, Unauthenticated
from app.store.key_repository import NameTaken
from app.store.models import ApiKey, ApiKeyEvent
from app.store.unit_of_work import UnitOfWork

LOCAL_ADMIN = "local-admin"


class KeyState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class KeyNameTaken(Exception):
    """A key with this name exists (names are never reused: the audit trail names callers by them)."""


class KeyRevoked(Exception):
    """The key is revoked; nothing about it changes any more."""


@dataclass(frozen=True)
class KeyEvent:
    event: str
    at: datetime
    by: str
    expires_at: datetime | None
    reason: str | None


@dataclass(frozen=True)
class KeyInfo:
    """A key as an administrator sees it, as of the database's clock: never its secret or hash."""

    key_id: str
    name: str
    scopes: frozenset[Scope]
    sites: SiteAccess
    state: KeyState
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    history: tuple[KeyEvent, ...] = ()

    @classmethod
    def from_row(cls, row: ApiKey, now: datetime, history: Sequence[ApiKeyEvent] = ()) -> "KeyInfo":
        if row.revoked_at is not None:
            state = KeyState.REVOKED
        elif row.expires_at is not None and row.expires_at <= now:
            state = KeyState.EXPIRED
        else:
            state = KeyState.ACTIVE
        return cls(
            key_id=row.key_id,
            name=row.name,
            scopes=frozenset(Scope(scope) for scope in row.scopes),
            sites=_sites(row),
            state=state,
            created_at=row.created_at,
            created_by=row.created_by,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            revoked_by=row.revoked_by,
            history=tuple(
                KeyEvent(event.event, event.at, event.by, event.expires_at, event.reason) for event in history
            ),
        )


def _sites(row: ApiKey) -> SiteAccess:
    return ALL_SITES if row.sites is None else SiteAccess(frozenset(row.sites))


@dataclass(frozen=True)
class NewKey:
    info: KeyInfo
    secret: str
    """The whole key, as the caller sends it: shown once, stored nowhere."""


class KeyService:
    """Keys, managed by an administrator whose ``reach`` (its own sites) bounds the keys it may see, make,
    expire and revoke: an administrator for one site cannot mint or revoke a key for another."""

    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        read_unit_of_work: Callable[[], UnitOfWork] | None = None,
        lookup_unit_of_work: Callable[[], UnitOfWork] | None = None,
    ) -> None:
        """``read_unit_of_work``: for reads (on SQLite they should not queue for the write lock behind
        decisions being recorded); ``lookup_unit_of_work``: for the per-request key lookup, one statement
        (``create_lookup_session_factory``), a read by default."""
        self._unit_of_work = unit_of_work
        self._read_unit_of_work = read_unit_of_work or unit_of_work
        self._lookup_unit_of_work = lookup_unit_of_work or self._read_unit_of_work
        self._lookups = Coalescer(self._read_keys)

    async def _read_keys(self, key_ids: Iterable[str]) -> dict[str, tuple[KeyInfo, str]]:
        """Each key found, as of the database's clock, with its secret's hash."""
        async with self._lookup_unit_of_work() as uow:
            now, rows = await uow.keys.get_many_with_now(sorted(key_ids))
            return {row.key_id: (KeyInfo.from_row(row, now), row.secret_sha256) for row in rows}

    async def authenticate(self, presented: str) -> Principal:
        """The caller a presented key stands for; Unauthenticated when it is unknown, expired or revoked
        (expiry judged by the database's clock, the one that set it)."""
        key_id = key_id_of(presented)
        if key_id is None:
            raise Unauthenticated("malformed-key")
        found = await self._lookups.get(key_id)  # one query for the requests arriving together
        if found is None or not key_matches(presented, found[1]):
            raise Unauthenticated("unknown-key")
        key = found[0]
        if key.state is not KeyState.ACTIVE:
            raise Unauthenticated(key.state.value)
        return Principal(key.name, key.scopes, key.sites, method="api-key")

    async def create(
        self,
        name: str,
        scopes: frozenset[Scope],
        sites: SiteAccess,
        *,
        created_by: str,
        reach: SiteAccess = ALL_SITES,
        expires_at: datetime | None = None,
        reason: str | None = None,
        issued: IssuedKey | None = None,
    ) -> NewKey:
        """A new key; ``issued``: its secret, when the caller had to hold it before the key exists."""
        if not KEY_NAME.fullmatch(name):
            raise InvalidInput("/name", "A key name is letters, digits and . _ @ - (64 at most).")
        if not reach.covers(sites):
            raise Forbidden("site", "An administrator may make keys only for sites it is given itself.")
        issued = issued or issue_key()
        async with self._unit_of_work() as uow:
            now = await uow.keys.now()
            if expires_at is not None and expires_at <= now:
                raise InvalidInput("/expires_at", "A new key's expiry must be in the future.")
            row = ApiKey(
                key_id=issued.key_id,
                name=name,
                secret_sha256=issued.secret_sha256,
                scopes=sorted(scopes),
                sites=None if sites.sites is None else sorted(sites.sites),
                created_at=now,
                created_by=created_by,
                expires_at=expires_at,
                revoked_at=None,
                revoked_by=None,
            )
            try:
                await uow.keys.add(row)
            except NameTaken:
                raise KeyNameTaken(f"a key named {name!r} exists; names are never reused") from None
            event = ApiKeyEvent(
                key_id=row.key_id,
                event="created",
                at=now,
                by=created_by,
                expires_at=expires_at,
                reason=reason,
            )
            await uow.keys.record(event)
            info = KeyInfo.from_row(row, now, [event])
            await uow.commit()
        return NewKey(info, issued.secret)

    async def list(self, reach: SiteAccess = ALL_SITES) -> list[KeyInfo]:
        """Every key within ``reach``, oldest first."""
        async with self._read_unit_of_work() as uow:
            now = await uow.keys.now()
            return [KeyInfo.from_row(row, now) for row in await uow.keys.list() if reach.covers(_sites(row))]

    async def get(self, key_id: str, reach: SiteAccess = ALL_SITES) -> KeyInfo | None:
        """The key and its history; None when there is none within ``reach``."""
        async with self._read_unit_of_work() as uow:
            found = await uow.keys.get_with_now(key_id)
            if found is None or not reach.covers(_sites(found[0])):
                return None
            return KeyInfo.from_row(*found, await uow.keys.history(key_id))

    async def revoke(
        self, key_id: str, *, by: str, reach: SiteAccess = ALL_SITES, reason: str | None = None
    ) -> KeyInfo | None:
        """Refuse the key from now on; None when there is no such key within ``reach``, KeyRevoked when it
        is revoked already."""

        def revoked(row: ApiKey, now: datetime) -> ApiKeyEvent:
            row.revoked_at, row.revoked_by = now, by
            return ApiKeyEvent(key_id=key_id, event="revoked", at=now, by=by, expires_at=None, reason=reason)

        return await self._change(key_id, reach, revoked)

    async def expire(
        self,
        key_id: str,
        *,
        by: str,
        reach: SiteAccess = ALL_SITES,
        at: datetime | None = None,
        reason: str | None = None,
    ) -> KeyInfo | None:
        """Bring forward when the key stops working (now when ``at`` is None): never into the past, and
        never later than it was, so that expiring cannot lengthen a key's life or revive an expired key."""

        def expired(row: ApiKey, now: datetime) -> ApiKeyEvent:
            if row.expires_at is not None and row.expires_at <= now:
                raise InvalidInput("/expires_at", "This key has expired already; make a new key instead.")
            if at is not None and at < now:
                raise InvalidInput("/expires_at", "An expiry may be now or later, never in the past.")
            if at is not None and row.expires_at is not None and at > row.expires_at:
                raise InvalidInput("/expires_at", "An expiry can only be brought forward, never put back.")
            row.expires_at = at or now
            return ApiKeyEvent(
                key_id=key_id, event="expiry-set", at=now, by=by, expires_at=row.expires_at, reason=reason
            )

        return await self._change(key_id, reach, expired)

    async def _change(
        self, key_id: str, reach: SiteAccess, change: Callable[[ApiKey, datetime], ApiKeyEvent]
    ) -> KeyInfo | None:
        """Apply ``change`` to the key, locked (two changes take turns), and record the event it returns,
        together; None when there is no such key within ``reach``."""
        async with self._unit_of_work() as uow:
            found = await uow.keys.get_with_now(key_id, for_update=True)
            if found is None or not reach.covers(_sites(found[0])):
                return None
            row, now = found
            if row.revoked_at is not None:
                raise KeyRevoked("this key is revoked; it no longer changes")
            await uow.keys.record(change(row, now))
            info = KeyInfo.from_row(row, now, await uow.keys.history(key_id))
            await uow.commit()
        return info

    async def bootstrap_local_admin(self, path: Path, *, created_by: str) -> NewKey | None:
        """On a store without keys, create an admin key for every site, its secret in ``path`` (0600).

        The file is written before the key is committed, and removed if the key is not: a key whose secret
        no one holds would leave a store with keys and no way in. None when keys exist already.
        """
        async with self._read_unit_of_work() as uow:
            if await uow.keys.count() > 0:
                return None
        issued = issue_key()
        await asyncio.to_thread(_write_private, path, issued.secret + "\n")
        try:
            return await self.create(
                LOCAL_ADMIN,
                frozenset(Scope),
                ALL_SITES,
                created_by=created_by,
                reason="the local admin key, made on first start",
                issued=issued,
            )
        except BaseException:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            raise


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, whatever mode a file there had before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), stat.S_IRUSR | stat.S_IWUSR)
        file.write(text)
