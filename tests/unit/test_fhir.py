"""A FHIR R4B IL6 Observation is read as the plain request it stands for, or refused with a pointer into the
FHIR document; a recorded decision is written as a FHIR Bundle that fhir.resources accepts."""

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.guidanceresponse import GuidanceResponse
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.riskassessment import RiskAssessment

import app.interop
from app.api.fhir import prefers_fhir
from app.api.intake import PLAIN_JSON, Form, Intake
from app.api.intake_fhir import fhir_forms
from app.api.schemas.assessments import AssessmentIn
from app.domain.classifiers.registry import load_registry
from app.domain.errors import InvalidInput
from app.domain.il6 import Comparator, measure
from app.domain.specimen import Specimen, SpecimenType
from app.interop.fhir import SPECIMEN_TYPES, translate
from app.interop.fhir_decision import RISK_GROUP_SYSTEM, decision_bundle, module_canonical
from app.interop.fhir_documents import MAX_DEPTH, check_depth, too_deep
from app.interop.fhir_release import AnyBundle
from app.service.documents import Submission, decision_document
from tests.factories import assessment_body
from tests.fhir_factories import (
    MRN_SYSTEM,
    PLASMA,
    SUBJECT_SYSTEM,
    bundle,
    observation,
    patient,
    specimen,
    trial_id,
)
from tests.unit.test_domain_is_pure import imported_modules

VERSION = load_registry().resolve(None)
SECRET = "4242.4242"
"""A value no error message may repeat."""
INTEROP = Path(app.interop.__path__[0])
FHIR_OBSERVATION = fhir_forms(SUBJECT_SYSTEM).observation


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def read(document: Any, form: Form = FHIR_OBSERVATION) -> Submission:
    return Intake.read(form, body(document))


def refusals(document: Any, form: Form = FHIR_OBSERVATION) -> list[tuple[str, str]]:
    """Each (JSON Pointer, message) a refused document is answered with; an unknown key is pointed at by
    its object, as the problem handler does (the key is the caller's text)."""
    try:
        read(document, form)
    except InvalidInput as error:
        return [(error.pointer, error.message)]
    except RequestValidationError as error:
        found = []
        for detail in error.errors():
            location = detail["loc"][1:-1] if detail["type"] == "extra_forbidden" else detail["loc"][1:]
            found.append(("".join(f"/{part}" for part in location), str(detail["msg"])))
        return found
    raise AssertionError("the document was accepted")


def refused_at(document: Any, form: Form = FHIR_OBSERVATION) -> str:
    found = refusals(document, form)
    assert len(found) == 1, found
    return found[0][0]


def plain(**changes: Any) -> Submission:
    """The plain request a FHIR result stands for, read by the plain form."""
    fields: dict[str, Any] = {"subject": "PIT-0042", "site_id": None, **changes}
    return Intake.read(PLAIN_JSON, body(assessment_body(**fields)))


@pytest.mark.parametrize(
    "module",
    [
        "fhir.py",
        "fhir_documents.py",
        "fhir_subject.py",
        "fhir_value.py",
        "fhir_decision.py",
        "fhir_release.py",
        "cds_hooks.py",
    ],
)
def test_the_translation_knows_neither_http_nor_sql(module: str) -> None:
    tops = {name.partition(".")[0] for name in imported_modules((INTEROP / module).read_text())}
    assert not tops & {"fastapi", "starlette", "sqlalchemy", "alembic", "psycopg"}
    assert not any(
        name.startswith(("app.api", "app.store")) for name in imported_modules((INTEROP / module).read_text())
    )


def test_a_below_limit_serum_observation_is_the_plain_request_it_stands_for() -> None:
    submission = read(observation())

    assert submission == replace(plain(), reference="Observation/il6-result-1")
    assert submission.value == Decimal("1.5")
    assert submission.comparator is Comparator.LT
    assert submission.specimen_type is SpecimenType.SERUM
    assert submission.collected_at == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert submission.site_id is None


@pytest.mark.parametrize("comparator", ["<", "<=", ">", ">="])
def test_every_comparator_is_kept(comparator: str) -> None:
    assert read(observation(comparator=comparator)).comparator == Comparator(comparator)


def test_an_exact_value_in_another_unit_is_read_exactly() -> None:
    submission = read(observation(value=0.0215, unit="ng/mL", comparator=None))

    assert submission == replace(
        plain(value=0.0215, unit="ng/mL", comparator=None), reference="Observation/il6-result-1"
    )
    assert str(submission.value) == "0.0215"


def shown_as(unit: str, code: str) -> dict[str, Any]:
    """An observation whose valueQuantity shows ``unit`` and is coded ``code``."""
    document = observation(unit=code)
    document["valueQuantity"]["unit"] = unit
    return document


@pytest.mark.parametrize(("shown", "code"), [("ng/mL", "pg/mL"), ("pg/ml", "ng/mL"), (" NG/ML ", "ng/L")])
def test_a_unit_shown_of_another_size_than_its_code_is_refused(shown: str, code: str) -> None:
    assert refusals(shown_as(shown, code)) == [
        (
            "/valueQuantity/unit",
            f"The unit shown ({shown}) and the unit coded ({code}) are of different sizes: which one the "
            "value is in cannot be told.",
        )
    ]


@pytest.mark.parametrize(
    ("shown", "code"), [("pg/ml", "pg/mL"), ("ng/L", "pg/mL"), ("picograms per millilitre", "pg/mL")]
)
def test_a_unit_shown_of_the_same_size_or_in_words_is_left_to_be_shown(shown: str, code: str) -> None:
    assert read(shown_as(shown, code)).unit == code


def test_without_an_id_there_is_no_reference() -> None:
    assert read(observation(id=None)).reference is None


@pytest.mark.parametrize(("code", "kind"), list(SPECIMEN_TYPES.items()))
def test_specimen_types_come_from_their_snomed_codes(code: str, kind: SpecimenType) -> None:
    coding = {"system": "http://snomed.info/sct", "code": code}
    assert read(observation(specimen_coding=coding)).specimen_type is kind


@pytest.mark.parametrize("kind", ["collection", "batch", "transaction", "searchset"])
def test_a_bundle_with_the_patient_and_specimen_it_references(kind: str) -> None:
    result = observation(contained=None, subject=None, patient=None, specimen=None)
    document = bundle(result, patient(None, "PIT-0077"), specimen(PLASMA), kind=kind)
    patient_url, specimen_url = (entry["fullUrl"] for entry in document["entry"][1:])
    result["subject"] = {"reference": patient_url}
    result["specimen"] = {"reference": specimen_url}

    submission = read(document)

    assert submission.subject_id == "PIT-0077"
    assert submission.specimen_type is SpecimenType.PLASMA
    assert submission.reference == "Observation/il6-result-1"


def test_bundled_resources_are_found_by_type_and_id() -> None:
    result = observation(subject=None, contained=None, specimen={"reference": "Specimen/s1"})

    submission = read(bundle(result, specimen(), patient("ehr-1001", "PIT-0042")))

    assert submission.subject_id == "PIT-0042"
    assert submission.specimen_type is SpecimenType.SERUM


def test_a_relative_reference_finds_an_entry_by_its_absolute_full_url() -> None:
    result = observation(subject=None, patient="ehr-7", contained=None, specimen={"reference": "Specimen/s1"})
    document = bundle(result, specimen(id=None), patient(None, "PIT-0077"))
    document["entry"][1]["fullUrl"] = "https://ehr.example/fhir/Specimen/s1"
    document["entry"][2]["fullUrl"] = "https://ehr.example/fhir/Patient/ehr-7"

    submission = read(document)

    assert submission.subject_id == "PIT-0077"
    assert submission.specimen_type is SpecimenType.SERUM


def test_a_versioned_reference_finds_the_bundled_patient() -> None:
    result = observation(subject=None, patient=None, contained=None, specimen={"reference": "Specimen/s1"})
    result["subject"] = {"reference": "Patient/ehr-7/_history/3"}

    submission = read(bundle(result, specimen(), patient("ehr-7", "PIT-0077")))

    assert submission.subject_id == "PIT-0077"


def test_an_effective_instant_is_the_collection_time() -> None:
    document = observation(effective=None, effectiveInstant="2026-11-20T09:30:00.5+00:00")

    assert read(document).collected_at == datetime(2026, 11, 20, 9, 30, 0, 500000, tzinfo=UTC)


def test_the_subject_is_the_identifier_in_the_trials_system_on_the_subject_or_its_patient() -> None:
    contained = observation(subject=None, patient=None)
    contained["subject"] = {"reference": "#p"}
    contained["contained"].append(patient("p", "PIT-0002"))
    both = observation(subject="PIT-0003", patient=None)
    both["subject"]["reference"] = "#p"
    both["contained"].append(patient("p", "PIT-0003"))

    assert read(observation(subject="PIT-0001", patient="ehr-1")).subject_id == "PIT-0001"
    assert read(observation(subject="PIT-0001", patient=None)).subject_id == "PIT-0001"
    assert read(contained).subject_id == "PIT-0002"
    assert read(both).subject_id == "PIT-0003"


def test_the_subject_system_is_the_deployments() -> None:
    document = observation(subject=None, patient=None)
    document["subject"] = {"identifier": {"system": "https://trial.example/subject", "value": "PIT-0005"}}
    site_form = fhir_forms("https://trial.example/subject").observation

    assert Intake.read(site_form, body(document)).subject_id == "PIT-0005"
    assert refused_at(document) == "/subject"  # under the default system, this is no trial id


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param({"reference": "Patient/PIT-0042"}, id="the-ehr-id"),
        pytest.param({"reference": "https://ehr.example/fhir/Patient/PIT-0042"}, id="an-absolute-ehr-id"),
        pytest.param({"identifier": {"value": "PIT-0042"}}, id="an-identifier-without-system"),
        pytest.param(
            {"identifier": {"system": MRN_SYSTEM, "value": "PIT-0042"}}, id="a-medical-record-number"
        ),
    ],
)
def test_an_ehr_id_or_another_identifier_is_never_the_subject_id(subject: dict[str, Any]) -> None:
    document = observation(subject=None, patient=None)
    document["subject"] = subject

    [(pointer, message)] = refusals(document)

    assert pointer == "/subject"
    assert SUBJECT_SYSTEM in message
    assert "never taken for the trial subject id" in message


def test_a_patient_without_the_trial_identifier_is_not_guessed_from() -> None:
    document = observation(subject=None, patient=None)
    document["subject"] = {"reference": "#p"}
    document["contained"].append(patient("p", None))

    assert refused_at(document) == "/subject"


def test_a_patient_with_several_trial_identifiers_is_not_guessed_from() -> None:
    document = observation(subject=None, patient=None)
    document["subject"] = {"reference": "#p"}
    document["contained"].append(patient("p", "PIT-0002"))
    document["contained"][1]["identifier"].append(trial_id("PIT-0003"))

    [(pointer, message)] = refusals(document)

    assert pointer == "/contained/1/identifier"
    assert "several identifiers" in message


def test_a_subject_identifier_and_its_patient_that_disagree_are_refused() -> None:
    document = observation(subject="PIT-0002", patient=None)
    document["subject"]["reference"] = "#p"
    document["contained"].append(patient("p", "PIT-0003"))

    [(pointer, message)] = refusals(document)

    assert pointer == "/contained/1/identifier/1/value"
    assert "disagree" in message


def test_the_collection_time_may_come_from_the_specimen() -> None:
    document = observation(effective=None)
    document["contained"][0]["collection"] = {"collectedDateTime": "2026-11-19T08:00:00+01:00"}

    assert read(document).collected_at == datetime(2026, 11, 19, 7, 0, tzinfo=UTC)


def test_a_laboratory_flag_that_does_not_contradict_the_value_is_ignored() -> None:
    high = {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H"}
        ]
    }
    not_detected = {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "ND"}
        ]
    }

    assert read(observation(comparator=None, value=30, interpretation=[high])).value == 30
    assert read(observation(comparator=">", value=30, interpretation=[high])).value == 30
    assert read(observation(comparator="<", interpretation=[not_detected])).comparator is Comparator.LT
    assert read(observation(comparator="<=", interpretation=[not_detected])).comparator is Comparator.LE
    for code in ("DET", "POS", "HH"):
        assert read(observation(comparator=None, value=30, interpretation=_interpretation(code))).value == 30
    for code in ("L", "LL", "N", "A"):  # say no way that contradicts a value below a limit
        assert read(observation(interpretation=_interpretation(code))).comparator is Comparator.LT
    elsewhere = _interpretation("DET", "http://example.org/lab-flags")
    assert read(observation(interpretation=elsewhere)).comparator is Comparator.LT


def test_the_assay_may_be_the_method_text() -> None:
    assert read(observation(method={"text": "elecsys-il6"})).assay == "elecsys-il6"


V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V2_ABNORMAL_FLAGS = "http://terminology.hl7.org/CodeSystem/v2-0078"


def _interpretation(code: str, system: str = V3_INTERPRETATION) -> list[dict[str, Any]]:
    return [{"coding": [{"system": system, "code": code}]}]


def _without(document: dict[str, Any], *path: str) -> dict[str, Any]:
    target = document
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return document


REFUSALS = [
    pytest.param(
        {**observation(), "code": {"coding": [{"system": "http://loinc.org", "code": "49732-1"}]}},
        "/code",
        id="body-fluid-loinc",
    ),
    pytest.param(
        {**observation(), "code": {"coding": [{"system": "http://example.org", "code": "26881-3"}]}},
        "/code",
        id="not-loinc",
    ),
    pytest.param({**observation(), "code": {"text": "IL-6"}}, "/code", id="uncoded"),
    *(
        pytest.param({**observation(), "status": status}, "/status", id=f"status-{status}")
        for status in ("preliminary", "registered", "cancelled", "entered-in-error", "unknown")
    ),
    pytest.param(observation(valueQuantity=None), "/valueQuantity", id="no-value"),
    pytest.param(
        {**observation(valueQuantity=None), "valueString": "<1.5"}, "/valueQuantity", id="value-string"
    ),
    pytest.param(
        {
            **observation(),
            "valueQuantity": {"value": 1.5, "system": "http://example.org/units", "code": "pg/mL"},
        },
        "/valueQuantity/system",
        id="not-ucum",
    ),
    pytest.param(observation(unit="mg/dL"), "/valueQuantity/code", id="unknown-unit"),
    pytest.param(_without(observation(), "valueQuantity", "code"), "/valueQuantity/code", id="no-unit-code"),
    pytest.param(_without(observation(), "valueQuantity", "value"), "/valueQuantity/value", id="no-number"),
    pytest.param(observation(value="1.5"), "/valueQuantity/value", id="number-as-text"),
    pytest.param(observation(value=-1, comparator=None), "/valueQuantity/value", id="negative"),
    pytest.param(observation(value=1e10, comparator=None), "/valueQuantity/value", id="above-bounds"),
    pytest.param(
        observation(value=1.1234567890123456, comparator=None), "/valueQuantity/value", id="too-precise"
    ),
    pytest.param(observation(comparator="ad"), "/valueQuantity/comparator", id="r5-comparator"),
    pytest.param(
        {**observation(valueQuantity=None), "dataAbsentReason": {"text": "not done"}},
        "/dataAbsentReason",
        id="absent",
    ),
    pytest.param(
        {**observation(), "dataAbsentReason": {"text": "x"}}, "/dataAbsentReason", id="absent-with-value"
    ),
    pytest.param(
        observation(comparator=None, interpretation=_interpretation("ND")),
        "/interpretation",
        id="nd-exact",
    ),
    pytest.param(
        observation(comparator=None, interpretation=_interpretation("NEG")),
        "/interpretation",
        id="neg-exact",
    ),
    pytest.param(
        observation(comparator=">", interpretation=_interpretation("<")),
        "/interpretation",
        id="off-scale-low-above",
    ),
    *(
        pytest.param(
            observation(comparator=comparator, interpretation=_interpretation(code, system)),
            "/interpretation",
            id=f"{code}-{comparator}-{system.rpartition('/')[2]}",
        )
        for code in ("DET", "POS", "H", "HH")
        for comparator in ("<", "<=")
        for system in (V3_INTERPRETATION, V2_ABNORMAL_FLAGS)
    ),
    pytest.param(
        observation(comparator=None, interpretation=_interpretation("ND", V2_ABNORMAL_FLAGS)),
        "/interpretation",
        id="v2-nd-exact",
    ),
    pytest.param(observation(method=None), "/method", id="no-method"),
    pytest.param(
        observation(method={"coding": [{"code": "elecsys-il6"}, {"code": "other"}]}),
        "/method",
        id="two-assays",
    ),
    pytest.param(observation(method={"coding": [{"code": "elecsys il6"}]}), "/method", id="assay-not-an-id"),
    pytest.param(observation(subject=None, patient=None), "/subject", id="no-subject"),
    pytest.param(observation(subject="not an id"), "/subject/identifier/value", id="subject-not-an-id"),
    pytest.param(
        observation(subject=None, patient=None) | {"subject": {"reference": "Group/g1"}},
        "/subject/reference",
        id="subject-a-group",
    ),
    pytest.param(
        observation(subject=None, patient=None)
        | {"subject": {"reference": "Group/g1", "identifier": trial_id("PIT-0042")}},
        "/subject/reference",
        id="subject-a-group-with-a-trial-id",
    ),
    pytest.param(
        observation(subject=None, patient=None)
        | {"subject": {"type": "Group", "identifier": trial_id("PIT-0042")}},
        "/subject/type",
        id="subject-typed-a-group",
    ),
    pytest.param(
        observation(subject=None, patient=None) | {"subject": {"reference": "#s1"}},
        "/subject/reference",
        id="subject-the-specimen",
    ),
    pytest.param(
        observation(patient=None) | {"subject": {"reference": "#nobody", "identifier": trial_id("X")}},
        "/subject/reference",
        id="subject-contained-absent",
    ),
    pytest.param(observation(specimen=None), "/specimen", id="no-specimen"),
    pytest.param(
        observation(specimen={"reference": "#other"}), "/specimen/reference", id="specimen-elsewhere"
    ),
    pytest.param(
        observation(specimen_coding={"system": "http://snomed.info/sct", "code": "258450006"}),
        "/contained/0/type",
        id="csf",
    ),
    pytest.param(
        observation(
            specimen_coding={"system": "http://terminology.hl7.org/CodeSystem/v2-0487", "code": "SER"}
        ),
        "/contained/0/type",
        id="not-snomed",
    ),
    pytest.param(observation(effective=None), "/effectiveDateTime", id="no-time"),
    pytest.param(observation(effective="2026-11-20T09:30:00"), "/effectiveDateTime", id="no-offset"),
    pytest.param(observation(effective="2026-11-20"), "/effectiveDateTime", id="date-only"),
    pytest.param(observation(effective="2026-11"), "/effectiveDateTime", id="month-only"),
    pytest.param(observation(effective="2026"), "/effectiveDateTime", id="year-only"),
    pytest.param(
        {**observation(), "resourceType": "DiagnosticReport"}, "/resourceType", id="not-an-observation"
    ),
    pytest.param({**observation(), "unknownElement": 1}, "", id="unknown-element"),
    pytest.param([observation()], "", id="an-array"),
]
"""Documents refused, and the JSON Pointer each refusal names (the R5 tests hold R5 to the same)."""


@pytest.mark.parametrize(("document", "pointer"), REFUSALS)
def test_refusals_point_into_the_fhir_document(document: Any, pointer: str) -> None:
    assert refused_at(document) == pointer


@pytest.mark.parametrize("partial", ["2026", "2026-11", "2026-11-20"])
def test_a_partial_date_is_refused_never_made_a_time(partial: str) -> None:
    """FHIR allows a year, a month or a day as a dateTime; pydantic would read "2026" as 33 minutes past
    1970. Neither is a collection time."""
    [(pointer, message)] = refusals(observation(effective=partial))

    assert pointer == "/effectiveDateTime"
    assert "partial date" in message


def test_a_partial_specimen_collection_date_is_refused() -> None:
    document = observation(effective=None)
    document["contained"][0]["collection"] = {"collectedDateTime": "2026"}

    [(pointer, message)] = refusals(document)

    assert pointer == "/contained/0/collection/collectedDateTime"
    assert "partial date" in message


@pytest.mark.parametrize(
    ("effective", "collected_at"),
    [
        ("2026-11-20T09:30:00Z", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
        ("2026-11-20T09:30:00.123+02:00", datetime(2026, 11, 20, 7, 30, 0, 123000, tzinfo=UTC)),
    ],
)
def test_a_full_date_time_is_read(effective: str, collected_at: datetime) -> None:
    assert read(observation(effective=effective)).collected_at == collected_at


def test_a_collection_time_in_the_future_is_refused() -> None:
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert refused_at(observation(effective=future)) == "/effectiveDateTime"


def _nested(depth: int) -> dict[str, Any]:
    """An extension nested ``depth`` extensions deep."""
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "a"}
    for _ in range(depth - 1):
        extension = {"url": "http://example.org/x", "extension": [extension]}
    return extension


@pytest.mark.parametrize("depth", [40, 200])
def test_a_document_nested_too_deeply_is_refused_before_it_is_read(depth: int) -> None:
    """fhir.resources reads recursively and failed (RecursionError, a 500) on extensions ~200 deep. The body
    parser refuses such a body first; the FHIR reader refuses a parsed document that reaches it otherwise."""
    document = observation(extension=[_nested(depth)])
    assert too_deep(document)

    for sent in (document, bundle(document)):
        with pytest.raises(RequestValidationError) as refused:
            read(sent)
        [error] = refused.value.errors()
        assert "nested too deeply" in str(error["ctx"]["error"])
    with pytest.raises(InvalidInput, match=f"at most {MAX_DEPTH} levels") as checked:
        check_depth(document, ())
    assert checked.value.pointer == ""


def test_a_document_within_the_depth_limit_is_read() -> None:
    document = observation(extension=[_nested(20)])
    assert not too_deep(document)

    assert read(document).value == Decimal("1.5")


@pytest.mark.parametrize(
    ("document", "deep"),
    [
        ({}, False),
        ([], False),
        (1, False),
        ([[[]]], False),
        ([[[[]]]], True),
        ({"a": {"b": {"c": {}}}}, True),
    ],
)
def test_depth_counts_levels_of_objects_and_arrays(document: Any, deep: bool) -> None:
    assert too_deep(document, limit=3) is deep


def test_a_recursion_error_inside_fhir_resources_is_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    def recurse(*_: Any, **__: Any) -> Any:
        raise RecursionError

    monkeypatch.setattr(
        "fhir.resources.R4B.observation.Observation.model_validate", classmethod(recurse), raising=True
    )

    assert refused_at(observation()) == ""


def test_errors_in_the_specimen_point_at_the_specimen() -> None:
    document = observation(effective=None)
    document["contained"][0]["collection"] = {"collectedDateTime": "2026-11-20"}

    assert refused_at(document) == "/contained/0/collection/collectedDateTime"


def test_conflicting_specimen_codings_are_refused() -> None:
    document = observation()
    document["contained"][0]["type"]["coding"].append(PLASMA)

    assert refused_at(document) == "/contained/0/type"


def test_data_absent_says_what_to_send_instead() -> None:
    [(pointer, message)] = refusals(
        {**observation(valueQuantity=None), "dataAbsentReason": {"text": "below"}}
    )

    assert pointer == "/dataAbsentReason"
    assert "nothing to decide on" in message
    assert "comparator '<'" in message


BUNDLE_REFUSALS = [
    pytest.param([], "/entry", id="empty"),
    pytest.param([observation(), observation()], "/entry", id="two-observations"),
    pytest.param(
        [observation(), {"resourceType": "Patient", "id": "other"}],
        "/entry/1/resource",
        id="unreferenced-patient",
    ),
    pytest.param(
        [
            observation(),
            {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/PIT-0042"}},
        ],
        "/entry/1/resource/resourceType",
        id="another-resource",
    ),
    pytest.param(
        [observation(), {"resourceType": "NoSuchResource"}],
        "/entry/1/resource/resourceType",
        id="no-such-resource",
    ),
    pytest.param([observation(), {"resourceType": []}], "/entry/1/resource/resourceType", id="type-a-list"),
    pytest.param(
        [observation(), {"resourceType": {}}], "/entry/1/resource/resourceType", id="type-an-object"
    ),
    pytest.param([{**observation(), "status": "preliminary"}], "/entry/0/resource/status", id="inner-status"),
    pytest.param([{**observation(), "unknownElement": 1}], "/entry/0/resource", id="inner-unknown-element"),
]


@pytest.mark.parametrize(("entries", "pointer"), BUNDLE_REFUSALS)
def test_bundle_refusals_point_at_the_entry(entries: list[dict[str, Any]], pointer: str) -> None:
    assert refused_at(bundle(*entries)) == pointer


def test_a_bundle_of_another_type_is_refused() -> None:
    assert refused_at(bundle(observation(), kind="document")) == "/type"


def test_a_missing_required_element_is_named_so() -> None:
    untyped = bundle(observation())
    del untyped["type"]
    uncoded = observation()
    del uncoded["code"]

    assert refusals(untyped) == [("/type", "Field required")]
    assert refusals(uncoded) == [("/code", "Field required")]


def test_an_entry_without_a_resource_is_refused() -> None:
    document = bundle(observation())
    document["entry"].append({"fullUrl": "urn:uuid:5b0c2a8e-8f8a-4d55-9c5e-3f7a2b1d0c9e"})

    assert refused_at(document) == "/entry/1"


def test_an_unknown_contained_resource_is_refused_not_crashed_on() -> None:
    document = observation()
    document["contained"].append({"resourceType": "NoSuchResource", "id": "x"})

    assert refused_at(document) == ""


CARRYING_THE_SECRET = [
    observation(subject=f"{SECRET} x"),
    observation(value=SECRET),
    observation(unit=SECRET),
    observation(method={"coding": [{"code": f"{SECRET} x"}]}),
    observation(effective=SECRET),
    observation(comparator=SECRET),
    {**observation(), "resourceType": SECRET},
    {**observation(), "status": SECRET},
    bundle(observation(), {"resourceType": SECRET}),
    bundle(observation(), kind=SECRET),
]


@pytest.mark.parametrize("document", CARRYING_THE_SECRET)
def test_errors_never_repeat_what_was_sent(document: Any) -> None:
    found = refusals(document)
    assert found
    assert all(SECRET not in message for _, message in found)


def test_errors_found_when_deciding_are_pointed_into_the_document() -> None:
    unknown_assay = InvalidInput("/il6/assay", "Unknown assay")
    censored_at_zero = InvalidInput("/il6/value", "'< 0' allows no concentration")

    alone = FHIR_OBSERVATION.relocate(body(observation()), unknown_assay)
    bundled = FHIR_OBSERVATION.relocate(body(bundle(observation())), censored_at_zero)
    plain_form = PLAIN_JSON.relocate(body(assessment_body()), unknown_assay)

    assert (alone.pointer, alone.message) == ("/method", "Unknown assay")
    assert bundled.pointer == "/entry/0/resource/valueQuantity/value"
    assert plain_form is unknown_assay


def test_the_translation_records_where_each_field_came_from() -> None:
    translation = translate(observation(), SUBJECT_SYSTEM, at=("prefetch", "il6"))

    assert translation.source_of("/il6/value") == ("prefetch", "il6", "valueQuantity", "value")
    assert translation.source_of("/specimen/type") == ("prefetch", "il6", "contained", 0, "type")
    assert translation.source_of("/classifier") == ("prefetch", "il6")
    assert AssessmentIn.model_validate(translation.document).subject_id == "PIT-0042"


# FHIR out


def decision(
    value: str, comparator: Comparator | None = None, kind: SpecimenType = SpecimenType.SERUM
) -> dict[str, Any]:
    measurement = measure(Decimal(value), "pg/mL", comparator, VERSION.definition.assay("elecsys-il6"))
    specimen_ = Specimen(kind, datetime(2026, 11, 20, 9, 30, tzinfo=UTC))
    return decision_document(VERSION.classifier.decide(measurement, specimen_), VERSION)


RECORDED_AT = datetime(2026, 11, 21, 10, 0, 0, 123000, tzinfo=UTC)


def as_sent(bundle_: AnyBundle) -> Bundle:
    """The Bundle as a FHIR client reads it: its JSON, validated by fhir.resources."""
    return Bundle.model_validate(json.loads(bundle_.model_dump_json()))


def resources(bundle_: Bundle) -> tuple[GuidanceResponse, Parameters, RiskAssessment]:
    entries = [entry.resource for entry in bundle_.entry or ()]
    guidance, parameters, risk = entries
    assert isinstance(guidance, GuidanceResponse)
    assert isinstance(parameters, Parameters)
    assert isinstance(risk, RiskAssessment)
    return guidance, parameters, risk


def test_a_decision_as_a_fhir_bundle() -> None:
    assessment_id = uuid.uuid4()
    sent = as_sent(
        decision_bundle(
            assessment_id=assessment_id,
            subject_id="PIT-0042",
            recorded_at=RECORDED_AT,
            decision=decision("1.5", Comparator.LT),
            reference="Observation/il6-result-1",
        )
    )
    guidance, parameters, risk = resources(sent)

    assert sent.type == "collection"
    assert [entry.fullUrl for entry in sent.entry or ()] == [
        f"urn:uuid:{resource.id}" for resource in (guidance, parameters, risk)
    ]
    assert guidance.status == "success"
    assert guidance.moduleCanonical == "https://il6-eligibility/classifiers/il6-enrichment|1.0.0"
    assert guidance.moduleCanonical == module_canonical("il6-enrichment", "1.0.0")
    assert guidance.occurrenceDateTime == RECORDED_AT
    assert guidance.outputParameters is not None
    assert guidance.outputParameters.reference == f"urn:uuid:{parameters.id}"
    for resource in (guidance, risk):
        assert resource.subject is not None
        assert resource.subject.identifier is not None
        assert resource.subject.identifier.value == "PIT-0042"
        assert [(i.system, i.value) for i in resource.identifier or ()] == [
            ("urn:ietf:rfc:3986", f"urn:uuid:{assessment_id}")
        ]
    values = {p.name: p for p in parameters.parameter or ()}
    assert values["eligibility"].valueCoding is not None
    assert values["eligibility"].valueCoding.code == "eligible"
    assert values["risk-group"].valueCoding is not None
    assert values["risk-group"].valueCoding.code == "low"
    il6 = values["il6"].valueQuantity
    assert il6 is not None
    assert (il6.value, il6.comparator, il6.code) == (Decimal("1.5"), "<", "pg/mL")
    assert values["detectable"].valueBoolean is False
    reasons = [
        p.valueCoding.code
        for p in parameters.parameter or ()
        if p.name and p.name.endswith("-reason") and p.valueCoding
    ]
    assert reasons == ["IL6_UNDETECTABLE", "IL6_BELOW_CUTOFF"]
    assert risk.status == "final"
    assert risk.method is not None
    assert risk.method.text == "il6-enrichment@1.0.0"
    assert [b.reference for b in risk.basis or ()] == ["Observation/il6-result-1"]
    [prediction] = risk.prediction or []
    assert prediction.qualitativeRisk is not None
    assert [(c.system, c.code) for c in prediction.qualitativeRisk.coding or ()] == [
        (RISK_GROUP_SYSTEM, "low")
    ]


def test_a_decision_without_a_risk_group_has_no_prediction_but_a_note() -> None:
    sent = as_sent(
        decision_bundle(
            assessment_id=uuid.uuid4(),
            subject_id="PIT-0042",
            recorded_at=RECORDED_AT,
            decision=decision("30", kind=SpecimenType.PLASMA),
            reference=None,
        )
    )
    _, parameters, risk = resources(sent)

    assert risk.prediction is None
    assert risk.basis is None
    assert [note.text for note in risk.note or ()] == [
        "No IL6 risk group. The criterion is defined on serum; a plasma result cannot decide it."
    ]
    names = [p.name for p in parameters.parameter or ()]
    assert "risk-group" not in names
    values = {p.name: p for p in parameters.parameter or ()}
    assert values["eligibility"].valueCoding is not None
    assert values["eligibility"].valueCoding.code == "indeterminate"


def test_the_same_decision_always_reads_the_same() -> None:
    assessment_id = uuid.uuid4()
    made = [
        decision_bundle(
            assessment_id=assessment_id,
            subject_id="PIT-0042",
            recorded_at=RECORDED_AT,
            decision=decision("40"),
            reference=None,
        ).model_dump_json()
        for _ in range(2)
    ]
    assert made[0] == made[1]


@pytest.mark.parametrize(
    ("accept", "fhir"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("application/*", False),
        ("text/html", False),
        ("application/fhir+json", True),
        ("application/fhir+json; fhirVersion=4.3", True),
        ("APPLICATION/FHIR+JSON", True),
        ("application/fhir+json, */*", True),
        ("application/fhir+json, application/json", False),
        ("application/json;q=0.5, application/fhir+json", True),
        ("application/fhir+json;q=0.5, application/json", False),
        ("application/fhir+json;q=0", False),
        ("application/fhir+json;q=abc", False),
        ("application/fhir+json;q=0.9, */*;q=0.1", True),
    ],
)
def test_fhir_only_when_accept_ranks_it_above_plain_json(accept: str | None, fhir: bool) -> None:
    assert prefers_fhir(accept) is fhir
