"""API keys, for administrators: create (the secret is shown once), list, read, expire, revoke."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response

from app.api.auth import Administrator
from app.api.deps import get_keys
from app.api.exact_json import ExactJSONRoute, require_json, require_json_if_body
from app.api.problems import (
    KEY_NAME_TAKEN,
    KEY_REVOKED,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    STORE_UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION,
    responses,
)
from app.api.schemas.keys import ExpireIn, KeyIn, KeyList, KeyOut, NewKeyOut, RevokeIn
from app.domain.access import ALL_SITES, SiteAccess
from app.service.access import KeyService

router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=ExactJSONRoute)
Keys = Annotated[KeyService, Depends(get_keys)]
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]


@router.post(
    "",
    status_code=201,
    response_model=NewKeyOut,
    dependencies=[Depends(require_json)],
    responses=responses(
        VALIDATION, KEY_NAME_TAKEN, UNSUPPORTED_MEDIA_TYPE, PAYLOAD_TOO_LARGE, STORE_UNAVAILABLE
    ),
)
async def create_key(body: KeyIn, keys: Keys, admin: Administrator, response: Response) -> NewKeyOut:
    """Create an API key; the answer holds its secret, which is never shown again."""
    sites = ALL_SITES if body.sites is None else SiteAccess(frozenset(body.sites))
    new = await keys.create(
        body.name,
        frozenset(body.scopes),
        sites,
        created_by=admin.name,
        reach=admin.sites,
        expires_at=body.expires_at,
        reason=body.reason,
    )
    response.headers["Location"] = f"/v1/keys/{new.info.key_id}"
    out = KeyOut.from_info(new.info, with_history=True)
    return NewKeyOut(**out.model_dump(), secret=new.secret)


@router.get("", response_model=KeyList, responses=responses(STORE_UNAVAILABLE))
async def list_keys(keys: Keys, admin: Administrator) -> KeyList:
    """List every key within the administrator's sites, active, expired or revoked (never their secrets)."""
    return KeyList(items=[KeyOut.from_info(info) for info in await keys.list(admin.sites)])


@router.get("/{key_id}", response_model=KeyOut, responses=responses(NOT_FOUND, VALIDATION, STORE_UNAVAILABLE))
async def get_key(key_id: KeyId, keys: Keys, admin: Administrator) -> KeyOut:
    """Read a key and its history: who created, expired or revoked it, when and why."""
    info = await keys.get(key_id, admin.sites)
    if info is None:
        raise HTTPException(404, "No key with this id.")
    return KeyOut.from_info(info, with_history=True)


@router.post(
    "/{key_id}/revoke",
    response_model=KeyOut,
    dependencies=[Depends(require_json_if_body)],
    responses=responses(
        NOT_FOUND, VALIDATION, KEY_REVOKED, UNSUPPORTED_MEDIA_TYPE, PAYLOAD_TOO_LARGE, STORE_UNAVAILABLE
    ),
)
async def revoke_key(key_id: KeyId, keys: Keys, admin: Administrator, body: RevokeIn | None = None) -> KeyOut:
    """Revoke a key: every request with it is refused from now on, by every server process."""
    info = await keys.revoke(
        key_id, by=admin.name, reach=admin.sites, reason=None if body is None else body.reason
    )
    if info is None:
        raise HTTPException(404, "No key with this id.")
    return KeyOut.from_info(info, with_history=True)


@router.post(
    "/{key_id}/expire",
    response_model=KeyOut,
    dependencies=[Depends(require_json_if_body)],
    responses=responses(
        NOT_FOUND, VALIDATION, KEY_REVOKED, UNSUPPORTED_MEDIA_TYPE, PAYLOAD_TOO_LARGE, STORE_UNAVAILABLE
    ),
)
async def expire_key(key_id: KeyId, keys: Keys, admin: Administrator, body: ExpireIn | None = None) -> KeyOut:
    """Bring forward when a key stops working: now, or a later time before any expiry it has (to rotate it
    without a gap); an expiry is never put back."""
    info = await keys.expire(
        key_id,
        by=admin.name,
        reach=admin.sites,
        at=None if body is None else body.expires_at,
        reason=None if body is None else body.reason,
    )
    if info is None:
        raise HTTPException(404, "No key with this id.")
    return KeyOut.from_info(info, with_history=True)
