"""SDTM LB in and out through the API, on SQLite and PostgreSQL: an LB record is decided as its plain
request is, and recorded decisions come back as an SDTM-shaped LB dataset."""

import csv
import hashlib
import io
import json
import uuid
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine, select

from app.interop.sdtm_export import LB_COLUMNS
from app.settings import Environment, Settings
from app.store.models import Assessment
from tests.factories import assessment_body, subject_id
from tests.integration.conftest import app_client, count_rows

LB_MEDIA_TYPE = "application/vnd.cdisc.sdtm.lb+json"
EXPORT = "/v1/exports/sdtm-lb.csv"


def lb_record(subject: str, **changes: Any) -> dict[str, Any]:
    """An LB record of a censored serum result, "<1.5 pg/mL", with standardised values that agree."""
    record: dict[str, Any] = {
        "STUDYID": "NCT01488318",
        "DOMAIN": "LB",
        "USUBJID": subject,
        "LBSEQ": 1,
        "LBTESTCD": "IL6",
        "LBTEST": "Interleukin 6",
        "LBLOINC": "26881-3",
        "LBORRES": "<1.5",
        "LBORRESU": "pg/mL",
        "LBSTRESC": "<1.5",
        "LBSTRESN": None,
        "LBSTRESU": "pg/mL",
        "LBLLOQ": 1.5,
        "LBSPEC": "SERUM",
        "LBMETHOD": "elecsys-il6",
        "LBDTC": "2026-11-20T09:30:00Z",
        "SITEID": "PIT",
        "VISIT": "SCREENING",
    }
    return {**record, **changes}


async def post(client: httpx.AsyncClient, raw: bytes, media_type: str) -> httpx.Response:
    return await client.post("/v1/assessments", content=raw, headers={"content-type": media_type})


async def export_rows(client: httpx.AsyncClient, subject: str, **params: Any) -> list[dict[str, str]]:
    response = await client.get(EXPORT, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(response.text))
    assert tuple(reader.fieldnames or ()) == LB_COLUMNS
    return [row for row in reader if row["USUBJID"] == subject]


def stored(db: Engine, assessment_id: str) -> Any:
    columns = (
        Assessment.request_media_type,
        Assessment.request_sha256,
        Assessment.request_body,
        Assessment.input,
    )
    with db.connect() as connection:
        return connection.execute(select(*columns).where(Assessment.id == uuid.UUID(assessment_id))).one()


async def test_an_lb_record_is_decided_as_its_plain_request_is(client: httpx.AsyncClient, db: Engine) -> None:
    subject = subject_id("LB")
    raw = json.dumps(lb_record(subject)).encode()

    lb = await post(client, raw, LB_MEDIA_TYPE)
    plain = await post(client, json.dumps(assessment_body(subject=subject)).encode(), "application/json")

    assert lb.status_code == 201, lb.text
    assert plain.status_code == 201, plain.text
    decided, expected = lb.json(), plain.json()
    for field in ("subject_id", "site_id", "specimen", "eligibility", "risk", "il6", "classifier"):
        assert decided[field] == expected[field], field
    assert decided["eligibility"]["status"] == "eligible"
    assert decided["risk"]["group"] == "low"
    assert decided["il6"] == {
        "pg_per_ml": 1.5,
        "comparator": "<",
        "detectable": False,
        "assay": "elecsys-il6",
        "lod_pg_per_ml": 1.5,
    }
    assert lb.headers["classifier-version"] == "il6-enrichment@1.0.0"

    row = stored(db, decided["id"])
    assert row.request_media_type == LB_MEDIA_TYPE
    assert row.request_sha256 == hashlib.sha256(raw).hexdigest()
    assert row.request_body == raw.decode()
    stored_input = json.loads(row.input) if isinstance(row.input, str) else row.input
    assert stored_input["reference"] == "LBSEQ:1"
    assert stored_input["il6"] == {"value": "1.5", "unit": "pg/mL", "comparator": "<", "assay": "elecsys-il6"}


async def test_an_exact_result_in_another_unit_is_decided_as_its_plain_request_is(
    client: httpx.AsyncClient,
) -> None:
    subject = subject_id("LB")
    record = lb_record(
        subject,
        LBORRES="0.02",
        LBORRESU="ng/mL",
        LBSTRESC="20",
        LBSTRESN=20,
        LBSEQ=2,
        LBDTC="2026-11-20T10:30+01:00",
    )
    body = assessment_body(subject=subject, value=0.02, unit="ng/mL", comparator=None)
    body["specimen"]["collected_at"] = "2026-11-20T10:30:00+01:00"

    lb = await post(client, json.dumps(record).encode(), f"{LB_MEDIA_TYPE}; charset=utf-8")
    plain = await post(client, json.dumps(body).encode(), "application/json")

    assert lb.status_code == 201, lb.text
    assert plain.status_code == 201, plain.text
    for field in ("specimen", "eligibility", "risk", "il6", "classifier"):
        assert lb.json()[field] == plain.json()[field], field
    assert (lb.json()["eligibility"]["status"], lb.json()["risk"]["group"]) == ("ineligible", "high")


async def test_a_refused_lb_record_is_a_problem_and_stores_nothing(
    client: httpx.AsyncClient, db: Engine
) -> None:
    subject = subject_id("LB")

    for changes, pointer in (
        ({"LBORRESU": "pg/ml"}, "/LBORRESU"),
        ({"LBTEST": "Interleukin 8"}, "/LBTEST"),
        ({"LBSTRESC": "<15"}, "/LBSTRESC"),
        ({"LBSPEC": None}, "/LBSPEC"),
        ({"LBDTC": "2026-11-20T09:30:00"}, "/LBDTC"),
        ({"LBSTAT": "NOT DONE", "LBORRES": None}, "/LBSTAT"),
        ({"USUBJID": "not an id"}, "/USUBJID"),
        ({"LBORRES": "<1.00000000000000001", "LBSTRESC": None, "LBLLOQ": None}, "/LBORRES"),
    ):
        response = await post(client, json.dumps(lb_record(subject, **changes)).encode(), LB_MEDIA_TYPE)

        assert response.status_code == 422, changes
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"] == "/problems/validation-error"
        assert [error["pointer"] for error in problem["errors"]] == [pointer]
        assert subject not in response.text
    assert count_rows(db, subject) == 0


async def test_the_415_names_the_lb_media_type(client: httpx.AsyncClient) -> None:
    response = await post(client, b"{}", "application/vnd.cdisc.sdtm.vs+json")

    assert response.status_code == 415
    assert LB_MEDIA_TYPE in response.json()["detail"]


async def test_the_export_has_a_row_per_decision(client: httpx.AsyncClient) -> None:
    subject = subject_id("LB")
    censored = await post(client, json.dumps(lb_record(subject)).encode(), LB_MEDIA_TYPE)
    exact_body = assessment_body(subject=subject, value=20, comparator=None, site_id="UPMC")
    exact = await post(client, json.dumps(exact_body).encode(), "application/json")
    assert (censored.status_code, exact.status_code) == (201, 201)

    rows = await export_rows(client, subject)

    assert len(rows) == 2
    first, second = rows
    assert first == {
        "STUDYID": "NCT01488318",
        "DOMAIN": "LB",
        "USUBJID": subject,
        "LBSEQ": "1",
        "LBTESTCD": "IL6",
        "LBTEST": "Interleukin 6",
        "LBORRES": "<1.5",
        "LBORRESU": "pg/mL",
        "LBSTRESC": "<1.5",
        "LBSTRESN": "",
        "LBSTRESU": "pg/mL",
        "LBLLOQ": "1.5",
        "LBSPEC": "SERUM",
        "LBLOINC": "26881-3",
        "LBMETHOD": "elecsys-il6",
        "LBDTC": "2026-11-20T09:30:00+00:00",
        "SITEID": "PIT",
        "ELIGSTAT": "eligible",
        "IL6RISK": "low",
        "CLASSIFIER": "il6-enrichment@1.0.0",
        "ASSESSID": censored.json()["id"],
        "AUDITSEQ": str(censored.json()["audit"]["seq"]),
        "RECDTC": first["RECDTC"],
        "SUPERSEDES": "",
        "SRCREF": "LBSEQ:1",
    }
    assert first["RECDTC"].startswith(censored.json()["recorded_at"][:19])
    assert (second["LBSEQ"], second["ASSESSID"], second["SITEID"]) == ("2", exact.json()["id"], "UPMC")
    assert (second["LBORRES"], second["LBSTRESC"], second["LBSTRESN"]) == ("20", "20", "20")
    assert (second["ELIGSTAT"], second["IL6RISK"], second["SRCREF"]) == ("ineligible", "high", "")


async def test_the_export_filters_keep_each_rows_lbseq(client: httpx.AsyncClient) -> None:
    subject = subject_id("LB")
    seqs = []
    for site in ("PIT", "UPMC", "PIT"):
        response = await post(client, json.dumps(lb_record(subject, SITEID=site)).encode(), LB_MEDIA_TYPE)
        assert response.status_code == 201
        seqs.append(response.json()["audit"]["seq"])

    from_second = await export_rows(client, subject, from_seq=seqs[1])
    only_second = await export_rows(client, subject, from_seq=seqs[1], to_seq=seqs[1])
    one_site = await export_rows(client, subject, site_id="PIT")

    assert [(r["LBSEQ"], r["AUDITSEQ"]) for r in from_second] == [("2", str(seqs[1])), ("3", str(seqs[2]))]
    assert [r["LBSEQ"] for r in only_second] == ["2"]
    assert [(r["LBSEQ"], r["SITEID"]) for r in one_site] == [("1", "PIT"), ("3", "PIT")]


async def test_the_export_refuses_a_malformed_filter(client: httpx.AsyncClient) -> None:
    for params in ({"site_id": "not a site"}, {"from_seq": "0"}):
        response = await client.get(EXPORT, params=params)

        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert "not a site" not in response.text


async def test_the_export_writes_the_configured_study_id(database_url: str) -> None:
    settings = Settings(
        database_url=SecretStr(database_url), environment=Environment.TEST, study_id="IL6-TEST-01"
    )
    subject = subject_id("LB")
    async for client in app_client(settings):
        created = await post(client, json.dumps(lb_record(subject)).encode(), LB_MEDIA_TYPE)
        assert created.status_code == 201

        rows = await export_rows(client, subject)

        assert [row["STUDYID"] for row in rows] == ["IL6-TEST-01"]


async def test_an_assay_the_classifier_does_not_list_is_pointed_at_lbmethod(
    client: httpx.AsyncClient, db: Engine
) -> None:
    # Well-formed, so the record reads; only deciding finds the classifier version has no such assay.
    record = lb_record(subject_id("LB"), LBMETHOD="other-il6-assay")

    response = await post(client, json.dumps(record).encode(), LB_MEDIA_TYPE)

    assert response.status_code == 422, response.text
    assert [error["pointer"] for error in response.json()["errors"]] == ["/LBMETHOD"]
    assert count_rows(db, record["USUBJID"]) == 0
