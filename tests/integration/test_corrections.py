"""Corrections (a decision that supersedes an earlier one) and replay of recorded decisions."""

import asyncio
import itertools
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.factories import assessment_body, subject_id
from tests.integration.conftest import count_rows, tampered_decision

PROBLEM = "application/problem+json"
REASON = "The laboratory re-reported the result in ng/mL."


async def post(client: httpx.AsyncClient, body: object, *, key: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post("/v1/assessments", content=json.dumps(body), headers=headers)


async def decide(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await post(client, body)
    assert response.status_code == 201, response.text
    decision: dict[str, Any] = response.json()
    return decision


def correction(
    subject: str, supersedes: str | None, reason: str | None = REASON, **fields: Any
) -> dict[str, Any]:
    body = assessment_body(subject=subject, **fields)
    if supersedes is not None:
        body["supersedes"] = supersedes
    if reason is not None:
        body["correction_reason"] = reason
    return body


def assert_validation_error(response: httpx.Response, pointer: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    assert [error.get("pointer") for error in problem["errors"]] == [pointer]


async def test_a_correction_supersedes_the_earlier_decision(client: httpx.AsyncClient, db: Engine) -> None:
    subject = subject_id()
    earlier = await decide(client, assessment_body(subject=subject, value=2.5, comparator=None))
    assert earlier["eligibility"]["status"] == "ineligible"
    assert earlier["supersedes"] is None
    assert earlier["superseded_by"] is None

    response = await post(
        client, correction(subject, earlier["id"], value=0.0010, unit="ng/mL", comparator="<")
    )

    assert response.status_code == 201, response.text
    corrected = response.json()
    assert corrected["supersedes"] == earlier["id"]
    assert corrected["correction_reason"] == REASON
    assert corrected["superseded_by"] is None
    assert corrected["eligibility"]["status"] == "eligible"
    assert corrected["audit"]["seq"] > earlier["audit"]["seq"]

    fetched = await client.get(f"/v1/assessments/{earlier['id']}")
    assert fetched.status_code == 200
    now = fetched.json()
    assert now["superseded_by"] == corrected["id"]
    # Otherwise exactly as it was recorded: same decision, same link in the chain.
    assert {**now, "superseded_by": None} == earlier
    assert now["audit"]["hash"] == earlier["audit"]["hash"]
    assert now["eligibility"] == earlier["eligibility"]
    assert (await client.get(f"/v1/assessments/{corrected['id']}")).json() == corrected

    history = await client.get(f"/v1/subjects/{subject}/assessments")
    assert history.status_code == 200
    items = history.json()["items"]
    assert [item["id"] for item in items] == [corrected["id"], earlier["id"]]
    assert items[0] == corrected
    assert items[1] == now
    assert count_rows(db, subject) == 2


async def test_corrections_chain_newest_first(client: httpx.AsyncClient, db: Engine) -> None:
    subject = subject_id()
    first = await decide(client, assessment_body(subject=subject))
    second = await decide(client, correction(subject, first["id"], value=3, comparator=None))
    third = await decide(client, correction(subject, second["id"], reason="Transcription error."))

    listed = (await client.get(f"/v1/subjects/{subject}/assessments")).json()["items"]

    assert [(item["id"], item["supersedes"], item["superseded_by"]) for item in listed] == [
        (third["id"], second["id"], None),
        (second["id"], first["id"], third["id"]),
        (first["id"], None, second["id"]),
    ]
    assert listed[0]["correction_reason"] == "Transcription error."
    assert count_rows(db, subject) == 3


@pytest.mark.parametrize(
    ("with_supersedes", "reason", "pointer"),
    [
        (True, None, "/correction_reason"),
        (False, REASON, "/supersedes"),
    ],
    ids=["supersedes-without-reason", "reason-without-supersedes"],
)
async def test_a_correction_names_both_supersedes_and_a_reason(
    client: httpx.AsyncClient, db: Engine, with_supersedes: bool, reason: str | None, pointer: str
) -> None:
    subject = subject_id()
    earlier = await decide(client, assessment_body(subject=subject))

    response = await post(client, correction(subject, earlier["id"] if with_supersedes else None, reason))

    assert_validation_error(response, pointer)
    assert count_rows(db, subject) == 1
    assert (await client.get(f"/v1/assessments/{earlier['id']}")).json()["superseded_by"] is None


async def test_an_empty_correction_reason_is_refused(client: httpx.AsyncClient, db: Engine) -> None:
    subject = subject_id()
    earlier = await decide(client, assessment_body(subject=subject))

    response = await post(client, correction(subject, earlier["id"], reason=""))

    assert_validation_error(response, "/correction_reason")
    assert count_rows(db, subject) == 1


async def test_supersedes_must_name_a_recorded_decision(client: httpx.AsyncClient, db: Engine) -> None:
    subject = subject_id()

    response = await post(client, correction(subject, str(uuid.uuid4())))

    assert_validation_error(response, "/supersedes")
    assert count_rows(db, subject) == 0


async def test_supersedes_must_be_a_uuid(client: httpx.AsyncClient, db: Engine) -> None:
    subject = subject_id()

    response = await post(client, correction(subject, "not-a-uuid"))

    assert_validation_error(response, "/supersedes")
    assert count_rows(db, subject) == 0


async def test_a_correction_must_be_for_the_same_subject(client: httpx.AsyncClient, db: Engine) -> None:
    theirs = await decide(client, assessment_body())
    other = subject_id()

    response = await post(client, correction(other, theirs["id"]))

    assert_validation_error(response, "/supersedes")
    assert count_rows(db, other) == 0
    assert (await client.get(f"/v1/assessments/{theirs['id']}")).json() == theirs


async def test_correcting_a_superseded_decision_is_409(client: httpx.AsyncClient, db: Engine) -> None:
    subject = subject_id()
    first = await decide(client, assessment_body(subject=subject))
    successor = await decide(client, correction(subject, first["id"]))

    response = await post(client, correction(subject, first["id"], value=9, comparator=None))

    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "/problems/already-superseded"
    assert problem["status"] == 409
    assert successor["id"] in problem["detail"]
    assert count_rows(db, subject) == 2
    assert (await client.get(f"/v1/assessments/{first['id']}")).json()["superseded_by"] == successor["id"]


async def test_concurrent_corrections_of_one_decision_record_one(
    client: httpx.AsyncClient, db: Engine
) -> None:
    subject = subject_id()
    first = await decide(client, assessment_body(subject=subject))

    responses = await asyncio.gather(
        *(post(client, correction(subject, first["id"], value=v, comparator=None)) for v in range(2, 10))
    )

    created = [response for response in responses if response.status_code == 201]
    assert len(created) == 1, [response.status_code for response in responses]
    for response in responses:
        if response.status_code != 201:
            assert response.status_code == 409, response.text
            # The check runs in the chain's turn, so every loser is told which correction won.
            assert response.json()["type"] == "/problems/already-superseded"
            assert created[0].json()["id"] in response.json()["detail"]
    assert count_rows(db, subject) == 2
    fetched = (await client.get(f"/v1/assessments/{first['id']}")).json()
    assert fetched["superseded_by"] == created[0].json()["id"]


async def test_a_retried_correction_returns_the_correction(client: httpx.AsyncClient, db: Engine) -> None:
    # The retry is answered from its Idempotency-Key before the decision it corrects is checked again.
    subject = subject_id()
    first = await decide(client, assessment_body(subject=subject))
    body = correction(subject, first["id"])
    key = str(uuid.uuid4())

    original = await post(client, body, key=key)
    retried = await post(client, body, key=key)

    assert original.status_code == 201, original.text
    assert retried.status_code == 201, retried.text
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json() == original.json()
    assert count_rows(db, subject) == 2


async def replay(client: httpx.AsyncClient, assessment_id: str, body: object = None) -> httpx.Response:
    if body is None:
        return await client.post(f"/v1/assessments/{assessment_id}/replay")
    return await client.post(
        f"/v1/assessments/{assessment_id}/replay",
        content=json.dumps(body),
        headers={"content-type": "application/json"},
    )


async def test_replay_without_a_body_reproduces_the_decision(client: httpx.AsyncClient, db: Engine) -> None:
    created = await decide(client, assessment_body(value=17.85, comparator=None))
    before = count_rows(db)

    response = await replay(client, created["id"])

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["matches"] is True
    assert result["changes"] == []
    assert result["recorded"] == created
    assert result["replayed"] == {key: created[key] for key in ("eligibility", "risk", "il6", "classifier")}
    assert count_rows(db) == before


VARIED: list[dict[str, Any]] = [
    {"value": value, "comparator": comparator, "unit": unit, "specimen_type": specimen}
    for (value, comparator), unit, specimen in itertools.product(
        [
            (1.5, "<"),
            (0.4, None),
            (17.85, None),
            (20, "<="),
            (17.84, ">"),
        ],
        ["pg/mL", "ng/mL", "ng/L"],
        ["serum", "plasma"],
    )
]


async def test_replay_reproduces_many_varied_decisions(client: httpx.AsyncClient) -> None:
    assert len(VARIED) == 30
    created = [await decide(client, assessment_body(**fields)) for fields in VARIED]
    # The set covers every outcome the classifier gives, so a replay that got any of them wrong would show.
    assert {d["eligibility"]["status"] for d in created} == {"eligible", "ineligible", "indeterminate"}
    assert {d["risk"]["group"] for d in created} == {"low", "high", None}
    assert {d["il6"]["comparator"] for d in created} == {"<", "<=", ">", None}

    for decision in created:
        response = await replay(client, decision["id"])

        assert response.status_code == 200, response.text
        assert response.json()["matches"] is True, response.json()["changes"]
        assert response.json()["changes"] == []
        assert response.json()["recorded"] == decision


@pytest.mark.parametrize("pin", ["il6-enrichment@1.0.0", "il6-enrichment"])
async def test_replay_under_a_named_version(client: httpx.AsyncClient, pin: str) -> None:
    created = await decide(client, assessment_body(value=0.02, unit="ng/mL", comparator=None))

    response = await replay(client, created["id"], {"classifier": pin})

    assert response.status_code == 200, response.text
    assert response.json()["matches"] is True
    assert response.json()["changes"] == []
    assert response.json()["replayed"]["classifier"] == created["classifier"]


async def test_replay_with_an_empty_body_is_replay_as_recorded(client: httpx.AsyncClient) -> None:
    created = await decide(client, assessment_body())

    response = await replay(client, created["id"], {})

    assert response.status_code == 200, response.text
    assert response.json()["matches"] is True


@pytest.mark.parametrize(
    ("pin", "pointer"),
    [
        ("il6-enrichment@9.9.9", "/classifier"),
        ("no-such-classifier", "/classifier"),
        ("Not A Pin", "/classifier"),
    ],
    ids=["unknown-version", "unknown-name", "malformed"],
)
async def test_replay_under_an_unknown_version_is_422(
    client: httpx.AsyncClient, db: Engine, pin: str, pointer: str
) -> None:
    created = await decide(client, assessment_body())
    before = count_rows(db)

    response = await replay(client, created["id"], {"classifier": pin})

    assert_validation_error(response, pointer)
    assert count_rows(db) == before


async def test_replay_reports_each_field_of_a_tampered_record(client: httpx.AsyncClient, db: Engine) -> None:
    created = await decide(client, assessment_body(value=1.0, comparator=None))
    assert (created["eligibility"]["status"], created["risk"]["group"]) == ("eligible", "low")

    def to_ineligible_high(decision: dict[str, Any]) -> None:
        decision["eligibility"]["status"] = "ineligible"
        decision["risk"]["group"] = "high"

    with tampered_decision(db, created["id"], to_ineligible_high):
        response = await replay(client, created["id"])
        # Under a named version the comparison is against the same (tampered) record.
        named = await replay(client, created["id"], {"classifier": "il6-enrichment@1.0.0"})

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["matches"] is False
    assert result["changes"] == [
        {"field": "eligibility.status", "recorded": "ineligible", "replayed": "eligible"},
        {"field": "risk.group", "recorded": "high", "replayed": "low"},
    ]
    assert result["recorded"]["eligibility"]["status"] == "ineligible"
    assert result["replayed"]["eligibility"]["status"] == "eligible"
    assert named.json()["matches"] is False
    assert [change["field"] for change in named.json()["changes"]] == ["eligibility.status", "risk.group"]
