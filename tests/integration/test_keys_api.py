"""API keys through the API, on SQLite and PostgreSQL: created with a secret shown once and stored only as
its hash, listed without it, expired and revoked with immediate effect and a history, names never reused;
and the database itself refusing to delete a key, change its secret or scopes, or un-revoke it."""

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from app.domain.access import API_KEY
from tests.integration.conftest import bearer, caller_of, key_headers
from tests.integration.test_access import assert_problem

PROBE = "/v1/classifiers"
"""Any route any key may call: a key that works gets 200 here."""


def new_name() -> str:
    return f"tests-{uuid.uuid4().hex[:12]}"


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": new_name(), "scopes": ["read"], "sites": ["PIT"]} | fields
    response = await client.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def works(client: httpx.AsyncClient, secret: str) -> int:
    """The status a request with ``secret`` gets."""
    return (await client.get(PROBE, headers=bearer(secret))).status_code


def stored(db: Engine, table: str, key_id: str) -> list[dict[str, Any]]:
    with db.connect() as connection:
        rows = connection.execute(text(f"SELECT * FROM {table} WHERE key_id = :k"), {"k": key_id}).mappings()  # noqa: S608
        return [dict(row) for row in rows]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_new_key_shows_its_secret_once_and_works_at_once(
    client: httpx.AsyncClient, db: Engine
) -> None:
    admin, name = await caller_of(client), new_name()

    response = await client.post(
        "/v1/keys", json={"name": name, "scopes": ["read", "assess"], "sites": ["PIT"], "reason": "LIMS feed"}
    )

    assert response.status_code == 201, response.text
    key = response.json()
    secret = key.pop("secret")
    assert API_KEY.fullmatch(secret)
    assert secret.startswith(f"il6_{key['key_id']}_")
    assert response.headers["location"] == f"/v1/keys/{key['key_id']}"
    assert (key["name"], key["scopes"], key["sites"], key["state"]) == (
        name,
        ["assess", "read"],
        ["PIT"],
        "active",
    )
    assert key["created_by"] == admin
    assert [(e["event"], e["by"], e["reason"]) for e in key["history"]] == [("created", admin, "LIMS feed")]
    assert await works(client, secret) == 200
    # Never again: not in the listing, not in the key, and only its SHA-256 in the database.
    digest = hashlib.sha256(secret.encode()).hexdigest()
    listed, read = await client.get("/v1/keys"), await client.get(f"/v1/keys/{key['key_id']}")
    assert read.json() == key
    [item] = [item for item in listed.json()["items"] if item["key_id"] == key["key_id"]]
    assert item == key | {"history": None}
    for answer in (listed, read):
        assert secret[21:] not in answer.text
        assert digest not in answer.text
    [row] = stored(db, "api_key", key["key_id"])
    assert row["secret_sha256"] == digest
    for kept in [row, *stored(db, "api_key_event", key["key_id"])]:
        assert all(secret[21:] not in str(value) for value in kept.values())


async def test_a_name_is_never_reused_even_after_its_key_is_revoked(client: httpx.AsyncClient) -> None:
    first = await create(client)
    again = {"name": first["name"], "scopes": ["assess"], "sites": None}

    assert_problem(await client.post("/v1/keys", json=again), 409, "key-name-taken")
    assert (await client.post(f"/v1/keys/{first['key_id']}/revoke")).status_code == 200
    assert_problem(await client.post("/v1/keys", json=again), 409, "key-name-taken")


async def test_a_revoked_key_is_refused_at_once_and_stays_revoked(client: httpx.AsyncClient) -> None:
    admin, key = await caller_of(client), await create(client)
    assert await works(client, key["secret"]) == 200

    revoked = await client.post(f"/v1/keys/{key['key_id']}/revoke", json={"reason": "laptop lost"})

    assert revoked.status_code == 200, revoked.text
    assert await works(client, key["secret"]) == 401
    read = (await client.get(f"/v1/keys/{key['key_id']}")).json()
    assert read == revoked.json()
    assert (read["state"], read["revoked_by"]) == ("revoked", admin)
    assert read["revoked_at"] is not None
    assert [(e["event"], e["by"], e["reason"]) for e in read["history"]] == [
        ("created", admin, None),
        ("revoked", admin, "laptop lost"),
    ]
    assert_problem(await client.post(f"/v1/keys/{key['key_id']}/revoke"), 409, "key-revoked")
    assert_problem(await client.post(f"/v1/keys/{key['key_id']}/expire"), 409, "key-revoked")
    assert await works(client, key["secret"]) == 401


@pytest.mark.parametrize("body", [None, {}, {"expires_at": None, "reason": "rotated"}])
async def test_a_key_expired_now_is_refused_at_once(client: httpx.AsyncClient, body: Any) -> None:
    key = await create(client)

    expired = await client.post(f"/v1/keys/{key['key_id']}/expire", json=body)

    assert expired.status_code == 200, expired.text
    assert await works(client, key["secret"]) == 401
    read = (await client.get(f"/v1/keys/{key['key_id']}")).json()
    assert read["state"] == "expired"
    assert [e["event"] for e in read["history"]] == ["created", "expiry-set"]
    assert read["history"][1]["expires_at"] == read["expires_at"]


async def test_a_key_expiring_later_works_until_then(client: httpx.AsyncClient) -> None:
    key, later = await create(client), datetime.now(UTC) + timedelta(hours=1)

    expiring = await client.post(f"/v1/keys/{key['key_id']}/expire", json={"expires_at": later.isoformat()})

    assert expiring.status_code == 200, expiring.text
    assert await works(client, key["secret"]) == 200
    read = (await client.get(f"/v1/keys/{key['key_id']}")).json()
    assert read["state"] == "active"
    assert abs(when(read["expires_at"]) - later) < timedelta(milliseconds=1)


async def test_an_expired_key_stays_expired(client: httpx.AsyncClient) -> None:
    key, later = await create(client), datetime.now(UTC) + timedelta(days=3650)
    assert (await client.post(f"/v1/keys/{key['key_id']}/expire")).json()["state"] == "expired"

    revived = await client.post(f"/v1/keys/{key['key_id']}/expire", json={"expires_at": later.isoformat()})

    assert_problem(revived, 422, "validation-error")
    assert await works(client, key["secret"]) == 401


async def test_an_expiry_is_only_ever_brought_forward(client: httpx.AsyncClient) -> None:
    key, soon = await create(client), datetime.now(UTC) + timedelta(days=1)
    set_soon = await client.post(f"/v1/keys/{key['key_id']}/expire", json={"expires_at": soon.isoformat()})
    assert set_soon.status_code == 200, set_soon.text

    put_back = await client.post(
        f"/v1/keys/{key['key_id']}/expire",
        json={"expires_at": (soon + timedelta(days=30)).isoformat()},
    )

    assert_problem(put_back, 422, "validation-error")
    read = (await client.get(f"/v1/keys/{key['key_id']}")).json()
    assert abs(when(read["expires_at"]) - soon) < timedelta(milliseconds=1)
    assert [event["event"] for event in read["history"]] == ["created", "expiry-set"]


async def test_a_reason_is_printable_text(client: httpx.AsyncClient) -> None:
    body = {"name": new_name(), "scopes": ["read"], "sites": None}
    with_a_bell = await client.post("/v1/keys", json={**body, "reason": "made \u0007 today"})
    with_line_breaks = await client.post("/v1/keys", json={**body, "reason": "made\ttoday,\r\nfor the EDC"})

    assert_problem(with_a_bell, 422, "validation-error")
    assert with_a_bell.json()["errors"][0]["pointer"] == "/reason"
    assert with_line_breaks.status_code == 201, with_line_breaks.text


async def test_an_expiry_in_the_past_is_refused(client: httpx.AsyncClient) -> None:
    key, past = await create(client), (datetime.now(UTC) - timedelta(minutes=1)).isoformat()

    assert_problem(
        await client.post(f"/v1/keys/{key['key_id']}/expire", json={"expires_at": past}),
        422,
        "validation-error",
    )
    created = await client.post(
        "/v1/keys", json={"name": new_name(), "scopes": ["read"], "sites": None, "expires_at": past}
    )
    assert_problem(created, 422, "validation-error")
    assert created.json()["errors"][0]["pointer"] == "/expires_at"
    assert await works(client, key["secret"]) == 200


@pytest.mark.parametrize("action", ["", "/revoke", "/expire"])
async def test_an_unknown_key_is_404_and_a_malformed_id_422(client: httpx.AsyncClient, action: str) -> None:
    method = "GET" if action == "" else "POST"

    assert_problem(await client.request(method, f"/v1/keys/{'0' * 16}{action}"), 404, "not-found")
    for malformed in ("0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "il6_0123456789abcdef"):
        answer = await client.request(method, f"/v1/keys/{malformed}{action}")
        assert_problem(answer, 422, "validation-error")
        assert answer.json()["errors"][0]["parameter"] == "key_id"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("scopes", []),
        ("scopes", ["root"]),
        ("scopes", "read"),
        ("sites", []),
        ("sites", ["*"]),
        ("sites", ["PIT", "a site"]),
        ("name", ""),
        ("name", "has space"),
        ("name", "-leading-dash"),
        ("name", "n" * 65),
        ("name", "lims\n"),
        ("name", "oidc:lims"),
        ("reason", ""),
        ("owner", "someone"),
    ],
)
async def test_an_invalid_key_is_refused(client: httpx.AsyncClient, field: str, value: Any) -> None:
    body = {"name": new_name(), "scopes": ["read"], "sites": ["PIT"], field: value}

    response = await client.post("/v1/keys", json=body)

    assert_problem(response, 422, "validation-error")
    assert response.json()["errors"][0]["pointer"].startswith("" if field == "owner" else f"/{field}")


async def test_only_an_admin_key_manages_keys(client: httpx.AsyncClient) -> None:
    other = await key_headers(client, scopes=("assess", "read"))
    key_id = other["Authorization"].removeprefix("Bearer il6_")[:16]
    attempts = [
        ("GET", "/v1/keys", None),
        ("POST", "/v1/keys", {"name": new_name(), "scopes": ["admin"], "sites": None}),
        ("GET", f"/v1/keys/{key_id}", None),
        ("POST", f"/v1/keys/{key_id}/revoke", {}),
        ("POST", f"/v1/keys/{key_id}/expire", {}),
    ]

    for method, path, body in attempts:
        assert_problem(await client.request(method, path, json=body, headers=other), 403, "forbidden")
    assert (await client.get(f"/v1/keys/{key_id}")).json()["state"] == "active"


async def test_a_site_admin_makes_and_sees_only_keys_within_its_sites(client: httpx.AsyncClient) -> None:
    site_admin = await key_headers(client, scopes=("admin",), sites=["PIT"])
    every_site = (await create(client, sites=None))["key_id"]

    for sites in (None, ["PIT", "UPMC"], ["UPMC"]):
        beyond = {"name": new_name(), "scopes": ["read"], "sites": sites}
        assert_problem(await client.post("/v1/keys", json=beyond, headers=site_admin), 403, "forbidden")
    within = await client.post(
        "/v1/keys", json={"name": new_name(), "scopes": ["read"], "sites": ["PIT"]}, headers=site_admin
    )
    assert within.status_code == 201, within.text
    listed = (await client.get("/v1/keys", headers=site_admin)).json()["items"]
    assert within.json()["key_id"] in {item["key_id"] for item in listed}
    assert {tuple(item["sites"] or ["*"]) for item in listed} == {("PIT",)}
    for method, action in (("GET", ""), ("POST", "/revoke"), ("POST", "/expire")):
        hidden = await client.request(method, f"/v1/keys/{every_site}{action}", headers=site_admin)
        unknown = await client.request(method, f"/v1/keys/{'0' * 16}{action}", headers=site_admin)
        assert_problem(hidden, 404, "not-found")
        assert hidden.json() == unknown.json()
    assert (await client.get(f"/v1/keys/{every_site}")).json()["state"] == "active"


def refusal(db: Engine, statement: str, key_id: str, *, as_app: bool) -> str:
    """The database's error for ``statement`` on the key (as the service's role ``il6_app``, or as the
    owner), failing if it is allowed; rolled back either way."""
    with db.connect() as connection:
        if as_app:
            connection.execute(text("SET ROLE il6_app"))
        with pytest.raises(DBAPIError) as refused:
            connection.execute(text(statement), {"k": key_id})
        connection.rollback()
    return str(refused.value.orig)


UNREVOKE = "UPDATE api_key SET revoked_at = NULL, revoked_by = NULL WHERE key_id = :k"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_service_role_cannot_delete_rewrite_or_unrevoke_a_key(
    client: httpx.AsyncClient, db: Engine
) -> None:
    active, revoked = await create(client), await create(client)
    assert (await client.post(f"/v1/keys/{revoked['key_id']}/revoke")).status_code == 200
    statements = [
        "DELETE FROM api_key WHERE key_id = :k",
        "UPDATE api_key SET secret_sha256 = upper(secret_sha256) WHERE key_id = :k",
        """UPDATE api_key SET scopes = '["assess", "read", "admin"]' WHERE key_id = :k""",
        "UPDATE api_key SET sites = NULL WHERE key_id = :k",
        "DELETE FROM api_key_event WHERE key_id = :k",
        "UPDATE api_key_event SET reason = 'rewritten' WHERE key_id = :k",
    ]

    for statement in statements:
        assert "permission denied" in refusal(db, statement, active["key_id"], as_app=True), statement
    assert "stays revoked" in refusal(db, UNREVOKE, revoked["key_id"], as_app=True)
    # What it may do: set an active key's expiry (rolled back here).
    with db.connect() as connection:
        connection.execute(text("SET ROLE il6_app"))
        changed = connection.execute(
            text("UPDATE api_key SET expires_at = now() WHERE key_id = :k"), {"k": active["key_id"]}
        )
        assert changed.rowcount == 1
        connection.rollback()
    assert await works(client, active["secret"]) == 200
    assert await works(client, revoked["secret"]) == 401


async def test_not_even_the_owner_can_delete_rewrite_or_unrevoke_a_key(
    client: httpx.AsyncClient, db: Engine
) -> None:
    active, revoked = await create(client), await create(client)
    assert (await client.post(f"/v1/keys/{revoked['key_id']}/revoke")).status_code == 200

    refusal(db, UNREVOKE, revoked["key_id"], as_app=False)
    refusal(db, "DELETE FROM api_key WHERE key_id = :k", active["key_id"], as_app=False)
    refusal(
        db,
        "UPDATE api_key SET secret_sha256 = upper(secret_sha256) WHERE key_id = :k",
        active["key_id"],
        as_app=False,
    )

    assert (await client.get(f"/v1/keys/{revoked['key_id']}")).json()["state"] == "revoked"
    assert await works(client, revoked["secret"]) == 401
    assert await works(client, active["secret"]) == 200


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_expiries_take_turns_and_never_put_an_expiry_back(client: httpx.AsyncClient) -> None:
    """'Stop it now' (a leak) racing 'in ten days' (a rotation): whichever wins, the key ends no later than
    the earlier of the two; before the row was locked, the later one could overwrite the first."""
    later = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    for _ in range(5):
        key = await create(client)
        path = f"/v1/keys/{key['key_id']}/expire"

        now, rotation = await asyncio.gather(client.post(path), client.post(path, json={"expires_at": later}))

        assert now.status_code == 200, now.text
        assert rotation.status_code in (200, 422), rotation.text
        assert await works(client, key["secret"]) == 401
        assert (await client.get(f"/v1/keys/{key['key_id']}")).json()["state"] == "expired"


PUT_BACK = "UPDATE api_key SET expires_at = expires_at + interval '1 day' WHERE key_id = :k"
PUT_BACK_SQLITE = "UPDATE api_key SET expires_at = '9999-01-01 00:00:00.000000' WHERE key_id = :k"


async def test_not_even_the_owner_can_put_an_expiry_back_or_rewrite_the_history(
    client: httpx.AsyncClient, db: Engine
) -> None:
    key = await create(client, expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    postgresql = db.dialect.name == "postgresql"

    refusal(db, PUT_BACK if postgresql else PUT_BACK_SQLITE, key["key_id"], as_app=False)
    refusal(db, "DELETE FROM api_key_event WHERE key_id = :k", key["key_id"], as_app=False)
    refusal(
        db, "UPDATE api_key_event SET reason = 'rewritten' WHERE key_id = :k", key["key_id"], as_app=False
    )
    if postgresql:
        refusal(db, "TRUNCATE api_key_event", key["key_id"], as_app=False)
        refusal(db, "TRUNCATE api_key CASCADE", key["key_id"], as_app=False)

    read = (await client.get(f"/v1/keys/{key['key_id']}")).json()
    assert read["expires_at"] == key["expires_at"]
    assert [event["event"] for event in read["history"]] == ["created"]
