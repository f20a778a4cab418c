"""API keys: issue, authenticate, list, expire and revoke; every change kept in the key's history.

A key is looked up on every request, so a revoked or expired key is refused at once, by every server
process. Only the SHA-256 of a secret is stored; the secret is shown once, when the key is created.
"""

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from app.domain.access import (
    ALL_SITES,
    CALLER_NAME,
    Principal,
    Scope,
    SiteAccess,
    issue_key,
    key_id_of,
    key_matches,
)
from app.domain.errors import InvalidInput
from app.service.errors import Unauthenticated
from app.store.models import ApiKey, ApiKeyEvent
from app.store.repositories import NameTaken
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
    """A key as an administrator sees it: never its secret or hash."""

    key_id: str
    name: str
    scopes: frozenset[Scope]
    sites: SiteAccess
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    history: tuple[KeyEvent, ...] = ()

    def state(self, now: datetime) -> KeyState:
        if self.revoked_at is not None:
            return KeyState.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return KeyState.EXPIRED
        return KeyState.ACTIVE

    @classmethod
    def from_row(cls, row: ApiKey, history: Sequence[ApiKeyEvent] = ()) -> "KeyInfo":
        return cls(
            key_id=row.key_id,
            name=row.name,
            scopes=frozenset(Scope(scope) for scope in row.scopes),
            sites=ALL_SITES if row.sites is None else SiteAccess(frozenset(row.sites)),
            created_at=row.created_at,
            created_by=row.created_by,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            revoked_by=row.revoked_by,
            history=tuple(
                KeyEvent(event.event, event.at, event.by, event.expires_at, event.reason) for event in history
            ),
        )


@dataclass(frozen=True)
class NewKey:
    info: KeyInfo
    secret: str
    """The whole key, as the caller sends it: shown once, stored nowhere."""


class KeyService:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._unit_of_work = unit_of_work
        self._clock = clock

    async def authenticate(self, presented: str) -> Principal:
        """The caller a presented key stands for; Unauthenticated when it is unknown, expired or revoked."""
        key_id = key_id_of(presented)
        if key_id is None:
            raise Unauthenticated("malformed-key")
        async with self._unit_of_work() as uow:
            row = await uow.keys.get(key_id)
            if row is None or not key_matches(presented, row.secret_sha256):
                raise Unauthenticated("unknown-key")
            key = KeyInfo.from_row(row)
        state = key.state(self._clock())
        if state is not KeyState.ACTIVE:
            raise Unauthenticated(state.value)
        return Principal(key.name, key.scopes, key.sites, method="api-key")

    async def create(
        self,
        name: str,
        scopes: frozenset[Scope],
        sites: SiteAccess,
        *,
        created_by: str,
        expires_at: datetime | None = None,
        reason: str | None = None,
    ) -> NewKey:
        if not CALLER_NAME.match(name):
            raise InvalidInput("/name", "A key name is letters, digits and . _ : @ - (64 at most).")
        issued = issue_key()
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
            info = KeyInfo.from_row(row, [event])
            await uow.commit()
        return NewKey(info, issued.secret)

    async def list(self) -> list[KeyInfo]:
        async with self._unit_of_work() as uow:
            return [KeyInfo.from_row(row) for row in await uow.keys.list()]

    async def get(self, key_id: str) -> KeyInfo | None:
        async with self._unit_of_work() as uow:
            row = await uow.keys.get(key_id)
            return None if row is None else KeyInfo.from_row(row, await uow.keys.history(key_id))

    async def revoke(self, key_id: str, *, by: str, reason: str | None = None) -> KeyInfo | None:
        """Refuse the key from now on; None when there is no such key, KeyRevoked when it is already."""
        async with self._unit_of_work() as uow:
            row = await uow.keys.get(key_id)
            if row is None:
                return None
            if row.revoked_at is not None:
                raise KeyRevoked("this key is revoked already")
            now = await uow.keys.now()
            row.revoked_at, row.revoked_by = now, by
            await uow.keys.record(
                ApiKeyEvent(key_id=key_id, event="revoked", at=now, by=by, expires_at=None, reason=reason)
            )
            info = KeyInfo.from_row(row, await uow.keys.history(key_id))
            await uow.commit()
        return info

    async def expire(
        self, key_id: str, *, by: str, at: datetime | None = None, reason: str | None = None
    ) -> KeyInfo | None:
        """Set when the key stops working (now when ``at`` is None; never in the past)."""
        async with self._unit_of_work() as uow:
            row = await uow.keys.get(key_id)
            if row is None:
                return None
            if row.revoked_at is not None:
                raise KeyRevoked("this key is revoked; its expiry no longer matters")
            now = await uow.keys.now()
            if at is not None and at < now:
                raise InvalidInput("/expires_at", "An expiry may be now or later, never in the past.")
            row.expires_at = at or now
            await uow.keys.record(
                ApiKeyEvent(
                    key_id=key_id, event="expiry-set", at=now, by=by, expires_at=row.expires_at, reason=reason
                )
            )
            info = KeyInfo.from_row(row, await uow.keys.history(key_id))
            await uow.commit()
        return info

    async def bootstrap_local_admin(self, path: Path, *, created_by: str) -> NewKey | None:
        """On a store without keys, create an admin key for every site and write it to ``path`` (0600).

        None when keys exist already: a store that has keys is never given another by this path.
        """
        async with self._unit_of_work() as uow:
            if await uow.keys.count() > 0:
                return None
        new = await self.create(
            LOCAL_ADMIN,
            frozenset(Scope),
            ALL_SITES,
            created_by=created_by,
            reason="the local admin key, made on first start",
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(new.secret + "\n")
        return new
