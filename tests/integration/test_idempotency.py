"""Idempotency-Key: a retry gets the first decision, a reused key is refused, and keys are per client."""

import asyncio
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.store.idempotency_repository import IDEMPOTENCY_LOCK_SPACE, KeyBinding, NewKeyBinding, _key_lock
from app.store.models import IdempotencyKey
from app.store.unit_of_work import UnitOfWork
from tests.factories import assessment_body, subject_id
from tests.integration.conftest import caller_of, count_rows, key_headers

PROBLEM = "application/problem+json"


def new_key() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Caller:
    """A calling system with a key of its own: the audit trail and the idempotency keys name it."""

    name: str
    headers: dict[str, str]


async def new_client(client: httpx.AsyncClient) -> Caller:
    name = f"client-{uuid.uuid4().hex[:12]}"
    return Caller(name, await key_headers(client, name=name))


async def post(
    client: httpx.AsyncClient,
    body: object,
    *,
    key: str | None = None,
    client_id: Caller | None = None,
    raw: str | None = None,
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    if client_id is not None:
        headers.update(client_id.headers)
    return await client.post(
        "/v1/assessments", content=json.dumps(body) if raw is None else raw, headers=headers
    )


def bound_keys(db: Engine, key: str) -> list[tuple[str, str]]:
    """(client_id, assessment_id) of every idempotency_key row with this key."""
    with db.connect() as connection:
        rows = connection.execute(
            select(IdempotencyKey.client_id, IdempotencyKey.assessment_id).where(IdempotencyKey.key == key)
        ).all()
    return sorted((row.client_id, str(row.assessment_id)) for row in rows)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["type"] == f"/problems/{slug}"
    assert problem["status"] == status
    return problem


async def test_retry_with_the_same_key_and_body_returns_the_first_decision(
    client: httpx.AsyncClient, db: Engine
) -> None:
    body = assessment_body(value=20, comparator=None)
    key = new_key()

    first = await post(client, body, key=key)
    second = await post(client, body, key=key)

    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["location"] == first.headers["location"]
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["audit"]["seq"] == first.json()["audit"]["seq"]
    assert second.json()["audit"]["hash"] == first.json()["audit"]["hash"]
    assert second.json() == first.json()
    assert count_rows(db, body["subject_id"]) == 1
    assert bound_keys(db, key) == [(await caller_of(client), first.json()["id"])]


async def test_the_same_meaning_written_differently_is_the_same_request(
    client: httpx.AsyncClient, db: Engine
) -> None:
    subject = subject_id()
    key = new_key()
    compact = (
        '{"subject_id":"SUBJECT","site_id":"PIT","il6":{"value":1.5,"unit":"pg/mL","comparator":"<",'
        '"assay":"elecsys-il6"},"specimen":{"type":"serum","collected_at":"2026-11-20T09:30:00Z"}}'
    ).replace("SUBJECT", subject)
    # Keys in another order, other white space, 1.50 and 15E-1 for 1.5, +00:00 and .000Z for Z.
    variants = [
        text.replace("SUBJECT", subject)
        for text in (
            '{\n  "specimen": {"collected_at": "2026-11-20T09:30:00+00:00", "type": "serum"},\n'
            '  "il6": {"assay": "elecsys-il6", "comparator": "<", "unit": "pg/mL", "value": 1.50},\n'
            '  "site_id": "PIT",\n  "subject_id": "SUBJECT"\n}',
            '{ "il6" : { "value" : 15E-1 , "unit" : "pg/mL" , "comparator" : "<" ,'
            ' "assay" : "elecsys-il6" } , "subject_id" : "SUBJECT" , "specimen" : { "type" : "serum" ,'
            ' "collected_at" : "2026-11-20T09:30:00.000Z" } , "site_id" : "PIT" }',
        )
    ]

    first = await post(client, None, key=key, raw=compact)
    assert first.status_code == 201, first.text
    for variant in variants:
        assert json.loads(variant)["subject_id"] == subject
        again = await post(client, None, key=key, raw=variant)

        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    assert count_rows(db, subject) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"value": 1.6},
        {"comparator": None},
        {"unit": "ng/L"},
        {"specimen_type": "plasma"},
        {"site_id": None},
        {"classifier": "il6-enrichment@1.0.0"},
    ],
    ids=["value", "comparator", "unit", "specimen", "site", "classifier-pin"],
)
async def test_the_same_key_with_a_different_body_is_refused(
    client: httpx.AsyncClient, db: Engine, change: dict[str, Any]
) -> None:
    subject = subject_id()
    key = new_key()
    first = await post(client, assessment_body(subject=subject), key=key)
    assert first.status_code == 201

    reused = await post(client, assessment_body(subject=subject, **change), key=key)

    problem = assert_problem(reused, 422, "idempotency-key-reused")
    assert problem["errors"] == [{"detail": problem["detail"], "parameter": "Idempotency-Key"}]
    assert "idempotent-replayed" not in reused.headers
    assert "eligibility" not in problem
    assert count_rows(db, subject) == 1
    assert bound_keys(db, key) == [(await caller_of(client), first.json()["id"])]


async def test_the_same_key_for_another_subject_is_refused_and_records_nothing(
    client: httpx.AsyncClient, db: Engine
) -> None:
    key = new_key()
    first = await post(client, assessment_body(), key=key)
    assert first.status_code == 201
    other = subject_id()

    reused = await post(client, assessment_body(subject=other), key=key)

    assert_problem(reused, 422, "idempotency-key-reused")
    assert count_rows(db, other) == 0


async def test_keys_are_scoped_to_the_client(client: httpx.AsyncClient, db: Engine) -> None:
    subject = subject_id()
    key = new_key()
    alpha, beta = await new_client(client), await new_client(client)

    from_alpha = await post(client, assessment_body(subject=subject), key=key, client_id=alpha)
    from_beta = await post(client, assessment_body(subject=subject), key=key, client_id=beta)
    # Another client may even bind the same key to a different request.
    beta_other = await post(
        client, assessment_body(value=30, comparator=None), key=key, client_id=await new_client(client)
    )

    assert from_alpha.status_code == from_beta.status_code == beta_other.status_code == 201
    assert "idempotent-replayed" not in from_beta.headers
    assert "idempotent-replayed" not in beta_other.headers
    assert from_alpha.json()["id"] != from_beta.json()["id"]
    assert from_alpha.json()["audit"]["client_id"] == alpha.name
    assert from_beta.json()["audit"]["client_id"] == beta.name
    assert count_rows(db, subject) == 2
    # Each client's retry returns its own decision.
    alpha_retry = await post(client, assessment_body(subject=subject), key=key, client_id=alpha)
    beta_retry = await post(client, assessment_body(subject=subject), key=key, client_id=beta)
    assert alpha_retry.headers["idempotent-replayed"] == beta_retry.headers["idempotent-replayed"] == "true"
    assert alpha_retry.json()["id"] == from_alpha.json()["id"]
    assert beta_retry.json()["id"] == from_beta.json()["id"]
    assert count_rows(db, subject) == 2
    assert len(bound_keys(db, key)) == 3


async def test_fifty_concurrent_duplicates_record_one_decision(client: httpx.AsyncClient, db: Engine) -> None:
    body = assessment_body()
    key = new_key()
    caller = await new_client(client)

    responses = await asyncio.gather(*(post(client, body, key=key, client_id=caller) for _ in range(50)))

    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = [response for response in responses if response.status_code == 201]
    assert created, statuses
    ids = {response.json()["id"] for response in created}
    assert len(ids) == 1
    assert [response.headers.get("idempotent-replayed") for response in created].count(None) == 1
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "request-in-progress")
            assert response.headers["retry-after"] == "1"
    if db.dialect.name == "sqlite":
        # Transactions begin IMMEDIATE: a duplicate waits its turn and then gets the original.
        assert statuses == {201: 50}
    assert count_rows(db, body["subject_id"]) == 1
    assert bound_keys(db, key) == [(caller.name, ids.pop())]
    # Whoever was told 409 and retries gets the one decision.
    retry = await post(client, body, key=key, client_id=caller)
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == created[0].json()["id"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_key_whose_request_is_in_flight_is_409_until_it_completes(
    client: httpx.AsyncClient, db: Engine
) -> None:
    body = assessment_body()
    key = new_key()
    caller = await new_client(client)
    lock = {"space": IDEMPOTENCY_LOCK_SPACE, "key": _key_lock(caller.name, key)}

    with db.connect() as holder:
        # Another process is deciding a request with this key: it holds the key's advisory lock.
        holder.execute(text("SELECT pg_advisory_lock(:space, :key)"), lock)
        try:
            in_flight = await post(client, body, key=key, client_id=caller)
            # The lock is per (client, key): another client's request with the same key is not held up.
            other_client = await post(client, assessment_body(), key=key, client_id=await new_client(client))
        finally:
            released = holder.execute(text("SELECT pg_advisory_unlock(:space, :key)"), lock).scalar_one()
            holder.commit()

    assert released is True
    problem = assert_problem(in_flight, 409, "request-in-progress")
    assert in_flight.headers["retry-after"] == "1"
    assert "eligibility" not in problem
    assert count_rows(db, body["subject_id"]) == 0
    assert caller.name not in {client_id for client_id, _ in bound_keys(db, key)}
    assert other_client.status_code == 201

    retried = await post(client, body, key=key, client_id=caller)

    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert count_rows(db, body["subject_id"]) == 1
    assert (caller.name, retried.json()["id"]) in bound_keys(db, key)


def expire(db: Engine, client_id: str, key: str, age: timedelta) -> None:
    with db.begin() as connection:
        updated = connection.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.client_id == client_id, IdempotencyKey.key == key)
            .values(created_at=datetime.now(UTC) - age)
        )
    assert updated.rowcount == 1


async def test_an_expired_key_is_forgotten(client: httpx.AsyncClient, db: Engine) -> None:
    subject = subject_id()
    key = new_key()
    caller = await new_client(client)
    first_body = assessment_body(subject=subject)
    second_body = assessment_body(subject=subject, value=40, comparator=None)
    first = await post(client, first_body, key=key, client_id=caller)
    assert first.status_code == 201

    # Still within the 24-hour TTL: the key is bound.
    expire(db, caller.name, key, timedelta(hours=23))
    assert (await post(client, second_body, key=key, client_id=caller)).status_code == 422

    expire(db, caller.name, key, timedelta(hours=24, minutes=1))
    second = await post(client, second_body, key=key, client_id=caller)

    assert second.status_code == 201, second.text
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["eligibility"]["status"] == "ineligible"
    assert second.json()["audit"]["idempotency_key"] == key
    assert count_rows(db, subject) == 2
    assert bound_keys(db, key) == [(caller.name, second.json()["id"])]
    # The key is now bound to the new decision: a retry replays it, the first body is refused.
    retry = await post(client, second_body, key=key, client_id=caller)
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == second.json()["id"]
    assert_problem(await post(client, first_body, key=key, client_id=caller), 422, "idempotency-key-reused")
    # The first decision is still recorded, as it was.
    assert (await client.get(first.headers["location"])).json() == first.json()


@pytest.mark.parametrize(
    "key",
    ["", "a b", 'a"b', "k" * 256, '""', '"abc', 'abc"', "a\\b", "caf\u00e9"],
    ids=[
        "empty",
        "space",
        "inner-quote",
        "too-long",
        "empty-quoted",
        "open-quote",
        "close-quote",
        "backslash",
        "non-ascii",
    ],
)
async def test_invalid_keys_are_refused(client: httpx.AsyncClient, db: Engine, key: str) -> None:
    body = assessment_body()

    response = await client.post(
        "/v1/assessments",
        content=json.dumps(body),
        headers=[(b"content-type", b"application/json"), (b"idempotency-key", key.encode())],
    )

    problem = assert_problem(response, 422, "validation-error")
    assert [error.get("parameter") for error in problem["errors"]] == ["Idempotency-Key"]
    assert count_rows(db, body["subject_id"]) == 0


async def test_the_longest_key_is_accepted(client: httpx.AsyncClient, db: Engine) -> None:
    key = uuid.uuid4().hex + "k" * (255 - 32)
    body = assessment_body()

    first = await post(client, body, key=key)
    quoted = await post(client, body, key=f'"{key}"')

    assert first.status_code == 201, first.text
    assert first.json()["audit"]["idempotency_key"] == key
    assert quoted.status_code == 201, quoted.text
    assert quoted.headers["idempotent-replayed"] == "true"
    assert quoted.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("quoted_first", [True, False], ids=["quoted-then-bare", "bare-then-quoted"])
async def test_a_quoted_key_is_the_bare_key(
    client: httpx.AsyncClient, db: Engine, quoted_first: bool
) -> None:
    body = assessment_body()
    key = new_key()
    forms = [f'"{key}"', key] if quoted_first else [key, f'"{key}"']

    first = await post(client, body, key=forms[0])
    second = await post(client, body, key=forms[1])

    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert first.json()["audit"]["idempotency_key"] == key
    assert count_rows(db, body["subject_id"]) == 1
    assert bound_keys(db, key) == [(await caller_of(client), first.json()["id"])]


async def test_the_key_is_recorded_on_the_audit_row(client: httpx.AsyncClient, db: Engine) -> None:
    key = new_key()
    with_key = await post(client, assessment_body(), key=key)
    without_key = await post(client, assessment_body())

    assert with_key.json()["audit"]["idempotency_key"] == key
    assert without_key.json()["audit"]["idempotency_key"] is None
    assert (await client.get(with_key.headers["location"])).json()["audit"]["idempotency_key"] == key
    with db.connect() as connection:
        stored = connection.execute(
            text("SELECT idempotency_key FROM assessment WHERE subject_id = :s"),
            {"s": with_key.json()["subject_id"]},
        ).scalar_one()
    assert stored == key


async def test_a_refused_request_does_not_bind_its_key(client: httpx.AsyncClient, db: Engine) -> None:
    subject = subject_id()
    key = new_key()
    refused_body = {
        **assessment_body(subject=subject),
        "supersedes": str(uuid.uuid4()),
        "correction_reason": "wrong unit",
    }

    refused = await post(client, refused_body, key=key)
    accepted = await post(client, assessment_body(subject=subject), key=key)

    assert refused.status_code == 422
    assert refused.json()["errors"][0]["pointer"] == "/supersedes"
    assert accepted.status_code == 201, accepted.text
    assert "idempotent-replayed" not in accepted.headers
    assert count_rows(db, subject) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_each_key_of_a_batch_is_told_apart_when_one_is_held_elsewhere(
    sessions: async_sessionmaker[AsyncSession], db: Engine
) -> None:
    """The writer claims every key of a batch in one statement and matches the answers to the keys by
    position: the one key another transaction holds must be the one refused, wherever it stands."""
    keys = [("client-a", new_key()) for _ in range(5)]
    held = keys[1]
    lock = {"space": IDEMPOTENCY_LOCK_SPACE, "key": _key_lock(*held)}
    with db.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:space, :key)"), lock)
        try:
            async with UnitOfWork(sessions) as uow:
                claimed = await uow.idempotency.try_lock(keys)
                again = await uow.idempotency.try_lock(list(reversed(keys)))
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:space, :key)"), lock)
            holder.commit()

    assert claimed == [key != held for key in keys]
    assert again == [key != held for key in reversed(keys)]  # held by this transaction now: still True


async def test_the_bindings_read_are_those_of_the_keys_asked_for(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    caller = await new_client(client)
    bound = {}
    for _ in range(3):
        key = new_key()
        response = await post(client, assessment_body(), key=key, client_id=caller)
        assert response.status_code == 201, response.text
        bound[key] = uuid.UUID(response.json()["id"])
    asked = [(caller.name, key) for key in bound] + [
        (caller.name, new_key()),
        ("another-client", next(iter(bound))),
    ]

    async with UnitOfWork(sessions) as uow:
        bindings = await uow.idempotency.get(asked)

    assert {key: binding.assessment_id for (_, key), binding in bindings.items()} == bound
    assert set(bindings) == set(asked[:3])


async def test_a_batch_of_bindings_is_written_as_given(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    made = []
    for _ in range(3):
        response = await post(client, assessment_body())
        assert response.status_code == 201, response.text
        made.append(uuid.UUID(response.json()["id"]))
    at = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    bindings = [
        NewKeyBinding("batch-client", new_key(), f"{index:064x}", decision, at + timedelta(seconds=index))
        for index, decision in enumerate(made)
    ]

    async with UnitOfWork(sessions) as uow:
        await uow.idempotency.add(bindings)
        await uow.commit()
    async with UnitOfWork(sessions) as uow:
        read = await uow.idempotency.get([(binding.client_id, binding.key) for binding in bindings])

    assert read == {
        (binding.client_id, binding.key): KeyBinding(
            binding.fingerprint, binding.assessment_id, binding.created_at
        )
        for binding in bindings
    }


async def test_a_key_is_bound_at_the_time_its_decision_was_recorded(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    key = new_key()

    response = await post(client, assessment_body(), key=key)

    assert response.status_code == 201, response.text
    decision = response.json()
    async with UnitOfWork(sessions) as uow:
        [binding] = (await uow.idempotency.get([(decision["audit"]["client_id"], key)])).values()
    assert binding.assessment_id == uuid.UUID(decision["id"])
    assert binding.created_at == datetime.fromisoformat(decision["recorded_at"])
