"""API keys as administrators create and read them: never a stored hash, the secret only once."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.api.schemas.common import PRINTABLE_PATTERN, Moment
from app.domain.access import KEY_NAME, SITE_ID, Scope
from app.service.access import KeyInfo, KeyState

KeyName = Annotated[str, StringConstraints(pattern=KEY_NAME.pattern)]
SiteId = Annotated[str, StringConstraints(pattern=SITE_ID.pattern)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=PRINTABLE_PATTERN)]
"""Printable text, tabs and line breaks allowed."""


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: KeyName = Field(description="The caller's name, as the audit trail will record it; never reused.")
    scopes: list[Scope] = Field(min_length=1, max_length=3, description="What the key may do.")
    sites: list[SiteId] | None = Field(
        min_length=1,
        max_length=1000,
        description="The sites whose subjects the key may decide on and read; null for every site.",
    )
    expires_at: Moment | None = Field(None, description="When the key stops working; null: never.")
    reason: Reason | None = Field(None, description="Why it is made, for the key's history.")


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = Field(None, description="Why, for the key's history.")


class ExpireIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_at: Moment | None = Field(None, description="When it stops working; null: now.")
    reason: Reason | None = Field(None, description="Why, for the key's history.")


class KeyEventOut(BaseModel):
    event: str = Field(description="created, expiry-set or revoked.")
    at: datetime
    by: str = Field(description="Who made the change (a caller's name, or cli:<user>).")
    expires_at: datetime | None
    reason: str | None


class KeyOut(BaseModel):
    key_id: str = Field(description="The key's public id (its secret's first part after il6_).")
    name: str
    scopes: list[Scope]
    sites: list[str] | None = Field(description="null: every site.")
    state: KeyState
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    history: list[KeyEventOut] | None = Field(None, description="Every change, oldest first (single key).")

    @classmethod
    def from_info(cls, info: KeyInfo, *, with_history: bool = False) -> "KeyOut":
        return cls(
            key_id=info.key_id,
            name=info.name,
            scopes=sorted(info.scopes),
            sites=None if info.sites.sites is None else sorted(info.sites.sites),
            state=info.state,
            created_at=info.created_at,
            created_by=info.created_by,
            expires_at=info.expires_at,
            revoked_at=info.revoked_at,
            revoked_by=info.revoked_by,
            history=[
                KeyEventOut(event=e.event, at=e.at, by=e.by, expires_at=e.expires_at, reason=e.reason)
                for e in info.history
            ]
            if with_history
            else None,
        )


class KeyList(BaseModel):
    items: list[KeyOut]


class NewKeyOut(KeyOut):
    secret: str = Field(
        description="The key to send as Authorization: Bearer <secret>. Shown only now: it is not stored."
    )
