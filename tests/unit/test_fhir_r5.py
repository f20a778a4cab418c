"""FHIR R5, where the client asks for it (Content-Type ``fhirVersion=5.0``): read by fhir.resources' R5 models
through the same rules as R4B, so the same document is the same request or the same refusal at the same
pointer; what R5 adds is refused explicitly; and a decision written in R5 is the R4B one, validated by R5."""

import json
import uuid
from dataclasses import replace
from typing import Any

import pytest
from fastapi import HTTPException
from fhir.resources.bundle import Bundle as R5Bundle
from fhir.resources.guidanceresponse import GuidanceResponse as R5GuidanceResponse
from fhir.resources.observation import Observation as R5Observation
from fhir.resources.parameters import Parameters as R5Parameters
from fhir.resources.R4B.observation import Observation as R4BObservation
from fhir.resources.riskassessment import RiskAssessment as R5RiskAssessment

from app.api.fhir import fhir_media_type, fhir_release
from app.api.intake import PLAIN_JSON
from app.api.intake_fhir import FHIR_VERSIONS, R5_MEDIA_TYPE
from app.domain.il6 import Comparator
from app.domain.specimen import SpecimenType
from app.interop.fhir import SPECIMEN_ROLE, translate
from app.interop.fhir_decision import decision_bundle
from app.interop.fhir_release import R4B, R5
from app.service.documents import Submission
from tests.fhir_factories import PLASMA, SUBJECT_SYSTEM, bundle, observation, patient, specimen, trial_id
from tests.unit.test_fhir import (
    BUNDLE_REFUSALS,
    CARRYING_THE_SECRET,
    FHIR_OBSERVATION,
    RECORDED_AT,
    REFUSALS,
    SECRET,
    decision,
    plain,
    read,
    refusals,
)

R5_FORM = FHIR_OBSERVATION.for_parameters({"fhirversion": "5.0"})


def read_r5(document: Any) -> Submission:
    return read(document, R5_FORM)


def refusals_r5(document: Any) -> list[tuple[str, str]]:
    return refusals(document, R5_FORM)


def as_r5(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """R4B refusals as R5 ones: the same pointers and messages, the release named where a message names it."""
    return [(pointer, message.replace("FHIR R4B", "FHIR R5")) for pointer, message in found]


def test_the_version_selects_the_form() -> None:
    for parameters in ({}, {"fhirversion": "4.0"}, {"fhirversion": "4.3"}, {"charset": "utf-8"}):
        assert FHIR_OBSERVATION.for_parameters(parameters) is FHIR_OBSERVATION
    assert R5_FORM.media_type == R5_MEDIA_TYPE == "application/fhir+json; fhirVersion=5.0"
    assert FHIR_OBSERVATION.media_type == "application/fhir+json"
    assert set(FHIR_VERSIONS) == {"4.0", "4.3", "5.0"}
    assert R5_FORM.for_parameters({"fhirversion": "5.0"}) is R5_FORM


@pytest.mark.parametrize("version", ["5.0.0", "3.0", "4.0.1", "6.0", "R5", ""])
def test_another_version_is_unsupported(version: str) -> None:
    with pytest.raises(HTTPException) as refused:
        FHIR_OBSERVATION.for_parameters({"fhirversion": version})

    assert refused.value.status_code == 415
    assert "fhirVersion 4.0, 4.3 or 5.0" in str(refused.value.detail)


def test_the_r5_form_reads_with_the_r5_models(monkeypatch: pytest.MonkeyPatch) -> None:
    read_by: list[str] = []

    def validate(cls: Any, raw: Any, *_: Any, **__: Any) -> Any:
        read_by.append(cls.__module__)
        raise RecursionError

    for model in (R4BObservation, R5Observation):
        monkeypatch.setattr(model, "model_validate", classmethod(validate))

    refusals(observation())
    refusals_r5(observation())

    assert read_by == ["fhir.resources.R4B.observation", "fhir.resources.observation"]


def _in_a_bundle() -> dict[str, Any]:
    result = observation(contained=None, subject=None, patient=None, specimen=None)
    document = bundle(result, patient(None, "PIT-0077"), specimen(PLASMA), kind="searchset")
    patient_url, specimen_url = (entry["fullUrl"] for entry in document["entry"][1:])
    result["subject"] = {"reference": patient_url}
    result["specimen"] = {"reference": specimen_url}
    return document


def _with_specimen(effective: str | None = "2026-11-20T09:30:00Z", **changes: Any) -> dict[str, Any]:
    """The IL6 Observation with ``changes`` to its contained Specimen."""
    document = observation(effective=effective)
    document["contained"][0].update(changes)
    return document


def _with_contained_patient() -> dict[str, Any]:
    document = observation(subject=None, patient=None)
    document["subject"] = {"reference": "#p"}
    document["contained"].append(patient("p", "PIT-0002"))
    return document


def _role(code: str, system: str = SPECIMEN_ROLE) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


ACCEPTED = [
    pytest.param(observation(), id="below-limit"),
    pytest.param(observation(value=0.0215, unit="ng/mL", comparator=None), id="exact-ng-per-ml"),
    *(pytest.param(observation(comparator=c), id=f"comparator-{c}") for c in ("<", "<=", ">", ">=")),
    pytest.param(observation(specimen_coding=PLASMA), id="plasma"),
    pytest.param(observation(id=None), id="no-id"),
    pytest.param(observation(method={"text": "elecsys-il6"}), id="method-text"),
    pytest.param(observation(effective=None, effectiveInstant="2026-11-20T09:30:00.5+00:00"), id="instant"),
    pytest.param(
        _with_specimen(None, collection={"collectedDateTime": "2026-11-19T08:00:00+01:00"}),
        id="specimen-collection-time",
    ),
    pytest.param(_with_contained_patient(), id="contained-patient"),
    pytest.param(_in_a_bundle(), id="bundle"),
    pytest.param(
        bundle(
            observation(subject=None, contained=None, specimen={"reference": "Specimen/s1"}),
            specimen(),
            patient("ehr-1001", "PIT-0042"),
        ),
        id="bundle-by-type-and-id",
    ),
    pytest.param(
        observation(
            comparator=None,
            value=30,
            interpretation=[
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                            "code": "H",
                        }
                    ]
                }
            ],
        ),
        id="high-flag",
    ),
]


@pytest.mark.parametrize("document", ACCEPTED)
def test_an_r5_document_is_the_request_its_r4b_twin_is(document: dict[str, Any]) -> None:
    assert read_r5(json.loads(json.dumps(document))) == read(document)


def test_an_r5_observation_is_the_plain_request_it_stands_for() -> None:
    submission = read_r5(observation())

    assert submission == replace(plain(), reference="Observation/il6-result-1")
    assert submission.comparator is Comparator.LT
    assert submission.specimen_type is SpecimenType.SERUM


@pytest.mark.parametrize(("document", "pointer"), REFUSALS)
def test_r5_refusals_are_r4bs(document: Any, pointer: str) -> None:
    found = refusals_r5(document)

    assert found == as_r5(refusals(document))
    assert [where for where, _ in found] == [pointer]


@pytest.mark.parametrize(("entries", "pointer"), BUNDLE_REFUSALS)
def test_r5_bundle_refusals_are_r4bs(entries: list[dict[str, Any]], pointer: str) -> None:
    document = bundle(*entries)

    assert refusals_r5(document) == as_r5(refusals(document))
    assert [where for where, _ in refusals_r5(document)] == [pointer]


@pytest.mark.parametrize("document", CARRYING_THE_SECRET)
def test_r5_errors_never_repeat_what_was_sent(document: Any) -> None:
    found = refusals_r5(document)
    assert found
    assert all(SECRET not in message for _, message in found)


def test_an_invalid_r5_value_is_named_so() -> None:
    document = observation(effective="not a date")

    assert refusals_r5(document) == [("/effectiveDateTime", "Not a valid FHIR R5 value for this element.")]
    assert refusals(document) == [("/effectiveDateTime", "Not a valid FHIR R4B value for this element.")]


def _group(id_: str = "g1") -> dict[str, Any]:
    return {
        "resourceType": "Group",
        "id": id_,
        "type": "specimen",
        "membership": "enumerated",
        "member": [{"entity": {"reference": "#s1"}}],
    }


@pytest.mark.parametrize(
    ("document", "pointer", "says"),
    [
        pytest.param(
            observation(specimen={"reference": "#g1"}) | {"contained": [specimen(), _group()]},
            "/specimen/reference",
            "not a Group of specimens",
            id="specimen-a-contained-group",
        ),
        pytest.param(
            observation(specimen={"reference": "Group/g1"}),
            "/specimen/reference",
            "not a Group of specimens",
            id="specimen-a-group-elsewhere",
        ),
        pytest.param(
            observation(specimen={"reference": "#s1", "type": "Group"}),
            "/specimen/type",
            "not a Group of specimens",
            id="specimen-typed-a-group",
        ),
        pytest.param(
            bundle(observation(specimen={"reference": "Group/g1"}), _group()),
            "/entry/1/resource/resourceType",
            "only the Patient and Specimen",
            id="a-bundled-group",
        ),
        pytest.param(_with_specimen(combined="pooled"), "/contained/0/combined", "pooled", id="pooled"),
        pytest.param(
            _with_specimen(role=[_role("q")]), "/contained/0/role/0", "patient's own", id="control-specimen"
        ),
        pytest.param(
            _with_specimen(role=[_role("p"), _role("r")]),
            "/contained/0/role/1",
            "patient's own",
            id="replicate",
        ),
        pytest.param(
            _with_specimen(role=[{"text": "patient"}]),
            "/contained/0/role/0",
            "patient's own",
            id="role-uncoded",
        ),
        pytest.param(
            _with_specimen(role=[_role("P", "http://terminology.hl7.org/CodeSystem/v2-0369")]),
            "/contained/0/role/0",
            "patient's own",
            id="role-in-another-system",
        ),
        pytest.param(
            bundle(observation())
            | {
                "issues": {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "warning", "code": "x"}],
                }
            },
            "/issues",
            "issues",
            id="bundle-with-issues",
        ),
        pytest.param(
            observation(valueQuantity=None) | {"valueReference": {"reference": "Observation/other"}},
            "/valueQuantity",
            "valueQuantity",
            id="value-reference",
        ),
        pytest.param(
            observation(valueQuantity=None) | {"valueAttachment": {"contentType": "text/plain"}},
            "/valueQuantity",
            "valueQuantity",
            id="value-attachment",
        ),
    ],
)
def test_what_r5_adds_is_refused_with_a_pointer(document: dict[str, Any], pointer: str, says: str) -> None:
    [(found, message)] = refusals_r5(document)

    assert found == pointer
    assert says in message


def test_r5s_comparator_ad_is_refused_as_any_unknown_comparator() -> None:
    [(pointer, _)] = refusals_r5(observation(comparator="ad"))

    assert pointer == "/valueQuantity/comparator"


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(_with_specimen(combined="grouped"), id="grouped"),
        pytest.param(_with_specimen(role=[_role("p")]), id="role-patient"),
        pytest.param(_with_specimen(role=[_role("p"), _role("p")]), id="role-patient-twice"),
    ],
)
def test_a_grouped_or_patient_specimen_is_read(document: dict[str, Any]) -> None:
    assert read_r5(document) == read(observation())


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        pytest.param(_with_specimen(combined="pooled"), "/contained/0", id="combined"),
        pytest.param(_with_specimen(role=[_role("q")]), "/contained/0", id="role"),
        pytest.param(
            bundle(observation()) | {"issues": {"resourceType": "OperationOutcome", "issue": []}},
            "",
            id="issues",
        ),
        pytest.param(
            observation(valueQuantity=None) | {"valueReference": {"reference": "Observation/x"}},
            "",
            id="value-reference",
        ),
    ],
)
def test_r5_elements_stay_unknown_to_r4b(document: dict[str, Any], pointer: str) -> None:
    [(found, message)] = refusals(document)

    assert found == pointer
    assert message == "Extra inputs are not permitted"


def test_the_translation_takes_the_release() -> None:
    r4b = translate(observation(), SUBJECT_SYSTEM, at=("x",))
    r5 = translate(observation(), SUBJECT_SYSTEM, at=("x",), release=R5)

    assert r5 == r4b


def test_an_r5_subject_identifier_and_its_patient_that_disagree_are_refused() -> None:
    document = observation(subject="PIT-0002", patient=None)
    document["subject"]["reference"] = "#p"
    document["contained"].append(patient("p", "PIT-0003"))
    several = _with_contained_patient()
    several["contained"][1]["identifier"].append(trial_id("PIT-0003"))

    assert refusals_r5(document) == refusals(document)
    assert [pointer for pointer, _ in refusals_r5(document)] == ["/contained/1/identifier/1/value"]
    assert [pointer for pointer, _ in refusals_r5(several)] == ["/contained/1/identifier"]


# FHIR out


def test_a_decision_in_r5_is_the_r4b_one_validated_by_r5() -> None:
    assessment_id = uuid.uuid4()
    made = {
        release.name: decision_bundle(
            assessment_id=assessment_id,
            subject_id="PIT-0042",
            recorded_at=RECORDED_AT,
            decision=decision("1.5", Comparator.LT),
            reference="Observation/il6-result-1",
            release=release,
        )
        for release in (R4B, R5)
    }

    sent = R5Bundle.model_validate(json.loads(made["R5"].model_dump_json()))

    assert isinstance(made["R5"], R5Bundle)
    assert made["R5"].model_dump_json() == made["R4B"].model_dump_json()
    guidance, parameters, risk = (entry.resource for entry in sent.entry or ())
    assert isinstance(guidance, R5GuidanceResponse)
    assert isinstance(parameters, R5Parameters)
    assert isinstance(risk, R5RiskAssessment)
    assert guidance.moduleCanonical == "https://il6-eligibility/classifiers/il6-enrichment|1.0.0"
    assert [b.reference for b in risk.basis or ()] == ["Observation/il6-result-1"]


@pytest.mark.parametrize(
    ("accept", "release"),
    [
        (None, R4B),
        ("application/fhir+json", R4B),
        ("application/fhir+json; fhirVersion=4.3", R4B),
        ("application/fhir+json; fhirVersion=4.0", R4B),
        ("application/fhir+json; fhirVersion=3.0", R4B),
        ("application/fhir+json; fhirVersion=5.0", R5),
        ('application/fhir+json; fhirVersion="5.0"', R5),
        ("application/fhir+json;fhirversion=5.0;q=0.9", R5),
        ("application/fhir+json; fhirVersion=5.0, application/fhir+json; fhirVersion=4.3", R5),
        ("application/fhir+json; fhirVersion=5.0;q=0.5, application/fhir+json; fhirVersion=4.3", R4B),
        ("application/fhir+json; fhirVersion=5.0;q=0.5, application/fhir+json", R4B),
        ("application/fhir+json; fhirVersion=5.0;q=0, application/fhir+json", R4B),
        ("application/fhir+json, application/fhir+json; fhirVersion=5.0", R5),
        ("application/fhir+json;q=0.5, application/fhir+json; fhirVersion=5.0;q=0.8", R5),
        ("*/*; fhirVersion=5.0", R4B),
        ("application/fhir+json; fhirVersion=5.0.0", R4B),
    ],
)
def test_the_answer_is_r5_only_when_accept_prefers_it(accept: str | None, release: object) -> None:
    assert fhir_release(accept) is release


def test_the_answers_content_type_names_its_release() -> None:
    assert fhir_media_type(R4B) == "application/fhir+json; fhirVersion=4.3"
    assert fhir_media_type(R5) == "application/fhir+json; fhirVersion=5.0"


def test_a_form_that_is_not_fhir_ignores_the_version() -> None:
    assert PLAIN_JSON.for_parameters({"fhirversion": "9.9"}) is PLAIN_JSON
