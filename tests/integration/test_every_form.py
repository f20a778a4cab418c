"""One result, every form a trial system may send it in: the same decision about the same trial subject,
each in its own audit record.

Plain JSON, a FHIR Observation (in R4B, and in R5 as the client may ask), a CDS Hooks call, an SDTM LB
record and a REDCap record (through its Data Entry Trigger) reach the same rules through the same path, and
each record keeps its raw payload's hash and its format. The EHR knows the subject by ids of its own (a
Patient's logical id, a medical record number), all different from the trial's pseudonymous id, so that one
taken for the other would show.
"""

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.factories import assessment_body, subject_id
from tests.fhir_factories import hook_call, observation, patient
from tests.integration.test_redcap_det import (
    PATH,
    StandInRedcap,
    project_record,
    service,
    serving,
    settings_for,
    trigger,
)
from tests.integration.test_sdtm_api import lb_record


@dataclass(frozen=True)
class Result:
    """One laboratory result, as each form writes it."""

    value: str
    unit: str
    comparator: str | None

    @property
    def lborres(self) -> str:
        return (self.comparator or "") + self.value


RESULTS = [
    pytest.param(Result("1.5", "pg/mL", "<"), id="below-the-limit"),
    pytest.param(Result("17.85", "ng/L", None), id="at-the-cutoff"),
    pytest.param(Result("0.02", "ng/mL", None), id="detectable-in-ng-per-ml"),
    pytest.param(Result("20", "pg/mL", "<"), id="censored-across-both-limits"),
]
DECISION_PARTS = ("subject_id", "eligibility", "risk", "il6", "classifier", "specimen")


def stored(db: Engine, assessment_id: str) -> Any:
    with db.connect() as connection:
        return (
            connection.execute(
                text("SELECT request_media_type, request_sha256, request_body FROM assessment WHERE id = :i"),
                {"i": assessment_id if db.dialect.name == "postgresql" else assessment_id.replace("-", "")},
            )
            .mappings()
            .one()
        )


def lb_standardised(result: Result) -> dict[str, Any]:
    """The LB record's standardised values, in pg/mL, agreeing with its original result."""
    pg_per_ml = Decimal(result.value) * (1000 if result.unit == "ng/mL" else 1)
    text_value = format(pg_per_ml.normalize(), "f")
    return {
        "LBORRES": result.lborres,
        "LBORRESU": result.unit,
        "LBSTRESC": (result.comparator or "") + text_value,
        "LBSTRESN": None if result.comparator else Decimal(text_value),
        "LBSTRESU": "pg/mL",
        "LBLLOQ": Decimal(text_value) if result.comparator in ("<", "<=") else None,
    }


def as_json(document: Any) -> bytes:
    return json.dumps(document, default=lambda number: json.loads(str(number))).encode()


@pytest.mark.parametrize("result", RESULTS)
async def test_every_form_of_a_result_gets_the_same_decision(
    database_url: str, db: Engine, result: Result
) -> None:
    answers: dict[str, dict[str, Any]] = {}
    raw: dict[str, bytes] = {}
    subject = subject_id("ALL")  # the trial's pseudonymous id, in every form
    ehr_id = subject_id("ehr")  # the EHR's logical id for the same patient: never the subject id
    with serving(StandInRedcap()) as redcap:
        async with service(settings_for(database_url, redcap.url)) as client:
            plain = assessment_body(
                subject=subject,
                value=json.loads(result.value),
                unit=result.unit,
                comparator=result.comparator,
            )
            plain.pop("site_id")
            raw["json"] = as_json(plain)
            response = await client.post(
                "/v1/assessments", content=raw["json"], headers={"content-type": "application/json"}
            )
            answers["json"] = response.json()

            fhir = observation(
                subject=subject,
                patient=ehr_id,
                value=json.loads(result.value),
                unit=result.unit,
                comparator=result.comparator,
            )
            raw["fhir"] = as_json(fhir)
            response = await client.post(
                "/v1/assessments", content=raw["fhir"], headers={"content-type": "application/fhir+json"}
            )
            answers["fhir"] = response.json()

            raw["fhir-r5"] = raw["fhir"]
            response = await client.post(
                "/v1/assessments",
                content=raw["fhir-r5"],
                headers={"content-type": "application/fhir+json; fhirVersion=5.0"},
            )
            answers["fhir-r5"] = response.json()

            lb = {**lb_record(subject), **lb_standardised(result)}
            lb.pop("SITEID")
            raw["sdtm"] = as_json({key: value for key, value in lb.items() if value is not None})
            response = await client.post(
                "/v1/assessments",
                content=raw["sdtm"],
                headers={"content-type": "application/vnd.cdisc.sdtm.lb+json"},
            )
            answers["sdtm"] = response.json()

            call = hook_call(
                observation(
                    subject=None,
                    patient=ehr_id,
                    value=json.loads(result.value),
                    unit=result.unit,
                    comparator=result.comparator,
                ),
                patient_id=ehr_id,
                prefetched_patient=patient(ehr_id, subject),
            )
            response = await client.post("/cds-services/il6-eligibility", json=call)
            card = response.json()["cards"][0]
            answers["cds-hooks"] = (await client.get(f"/v1/assessments/{card['uuid']}")).json()

            record = subject  # the project's record id is the subject id (IL6_REDCAP_FIELDS' default)
            redcap.add(
                project_record(
                    record,
                    il6_value=result.value,
                    il6_unit=result.unit,
                    il6_comparator=result.comparator or "",
                )
            )
            response = await client.post(PATH, data=trigger(record))
            assert response.status_code == 202, response.text
            answers["redcap"] = (await client.get(response.headers["location"])).json()

            verification = (await client.get("/v1/audit/verify")).json()

    expected = {part: answers["json"][part] for part in DECISION_PARTS}
    assert expected["subject_id"] == subject
    for form, answer in answers.items():
        assert {part: answer[part] for part in DECISION_PARTS} == expected, form
    assert len({answer["id"] for answer in answers.values()}) == len(answers)  # a record each

    media_types = {
        "json": "application/json",
        "fhir": "application/fhir+json",
        "fhir-r5": "application/fhir+json; fhirVersion=5.0",
        "sdtm": "application/vnd.cdisc.sdtm.lb+json",
        "cds-hooks": "application/cds-hooks+json",
        "redcap": "application/vnd.redcap.record+json",
    }
    for form, answer in answers.items():
        row = stored(db, answer["id"])
        assert row["request_media_type"] == media_types[form], form
        assert row["request_sha256"] == hashlib.sha256(row["request_body"].encode()).hexdigest(), form
        if form in raw:
            assert row["request_body"].encode() == raw[form], form
    assert verification["intact"] is True
