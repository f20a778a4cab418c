"""An SDTM LB record is read as the plain request it stands for, or refused with a pointer at the variable;
recorded decisions are written back as LB rows."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from app.api.exact_json import parse_exact_json
from app.api.intake_sdtm import SDTM_LB_SCHEMA, decode_sdtm_lb
from app.api.schemas.assessments import AssessmentIn
from app.domain.classifiers.registry import load_registry
from app.domain.errors import InvalidInput
from app.domain.il6 import Comparator, measure
from app.domain.specimen import Specimen, SpecimenType
from app.interop import sdtm, sdtm_export
from app.interop.sdtm import INFORMATIONAL, VARIABLES, parse_result, read_lb_record
from app.interop.sdtm_export import LB_COLUMNS, lb_row, lb_rows
from app.service.documents import Submission, decision_document, input_document
from tests.unit.test_domain_is_pure import FORBIDDEN, imported_modules

VERSION = load_registry().resolve(None)
DROP = object()
SECRET = "4242.4242"
"""A value no error message may repeat."""


def lb_record(**changes: Any) -> dict[str, Any]:
    """A complete LB record of a censored serum result ("<1.5 pg/mL"), with ``changes`` (DROP removes)."""
    record: dict[str, Any] = {
        "STUDYID": "NCT01488318",
        "DOMAIN": "LB",
        "USUBJID": "PIT-0042",
        "LBSEQ": 3,
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
    }
    for name, value in changes.items():
        if value is DROP:
            record.pop(name, None)
        else:
            record[name] = value
    return record


def decode(record: Any) -> Submission:
    """Decode as the service does: the JSON text parsed exactly (numbers as Decimal), then the form."""
    return decode_sdtm_lb(parse_exact_json(json.dumps(record).encode()))


def refusal(record: Any) -> tuple[str, str]:
    """The (pointer, message) of the one 422 error a record gets."""
    try:
        decode(record)
    except InvalidInput as error:
        return error.pointer, error.message
    except RequestValidationError as error:
        errors = error.errors()
        assert len(errors) == 1
        location = errors[0]["loc"]
        assert location[0] == "body"
        return "".join(f"/{part}" for part in location[1:]), errors[0]["msg"]
    pytest.fail("the record was accepted")


@pytest.mark.parametrize("module", [sdtm, sdtm_export], ids=["sdtm", "sdtm_export"])
def test_the_translation_is_pure(module: Any) -> None:
    modules = imported_modules(Path(module.__file__).read_text(encoding="utf-8"))

    assert not {name.partition(".")[0] for name in modules} & FORBIDDEN
    assert {name for name in modules if name.startswith("app.")} <= {
        "app.domain.decimals",
        "app.domain.errors",
        "app.domain.il6",
        "app.domain.specimen",
        "app.interop.sdtm",
    }


def test_a_censored_serum_result_is_read_as_comparator_and_limit() -> None:
    submission = decode(lb_record())

    assert submission == Submission(
        subject_id="PIT-0042",
        site_id="PIT",
        value=Decimal("1.5"),
        unit="pg/mL",
        comparator=Comparator.LT,
        assay="elecsys-il6",
        specimen_type=SpecimenType.SERUM,
        collected_at=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
        reference="LBSEQ:3",
    )


@pytest.mark.parametrize(
    ("orres", "comparator", "value"),
    [
        ("<1.5", Comparator.LT, "1.5"),
        ("< 1.5", Comparator.LT, "1.5"),
        ("<=1.5", Comparator.LE, "1.5"),
        (">5000", Comparator.GT, "5000"),
        (">=5000", Comparator.GE, "5000"),
        ("17.85", None, "17.85"),
        ("0", None, "0"),
        ("1.10", None, "1.10"),
    ],
)
def test_lborres_is_read_exactly(orres: str, comparator: Comparator | None, value: str) -> None:
    submission = decode(lb_record(LBORRES=orres, LBSTRESC=DROP, LBLLOQ=DROP))

    assert submission.comparator is comparator
    assert submission.value == Decimal(value)
    assert str(submission.value) == value  # Decimal from the text, never through a float


def test_the_same_record_as_the_plain_request_it_stands_for() -> None:
    plain = AssessmentIn.model_validate(
        {
            "subject_id": "PIT-0042",
            "site_id": "PIT",
            "il6": {"value": Decimal("0.02"), "unit": "ng/mL", "assay": "elecsys-il6"},
            "specimen": {"type": "plasma", "collected_at": "2026-11-20T10:30:00+01:00"},
        }
    ).to_submission()

    submission = decode(
        lb_record(
            LBORRES="0.02",
            LBORRESU="ng/mL",
            LBSTRESC="20",
            LBSTRESN=20,
            LBSTRESU="pg/mL",
            LBLLOQ=1.5,
            LBSPEC="PLASMA",
            LBDTC="2026-11-20T10:30:00+01:00",
            LBSEQ=DROP,
        )
    )

    assert submission == plain
    assert submission.reference is None


@pytest.mark.parametrize(
    ("term", "specimen"),
    [
        ("SERUM", SpecimenType.SERUM),
        ("PLASMA", SpecimenType.PLASMA),
        ("WHOLE BLOOD", SpecimenType.WHOLE_BLOOD),
        ("BODY FLUID", SpecimenType.OTHER_BODY_FLUID),
    ],
)
def test_lbspec_terms(term: str, specimen: SpecimenType) -> None:
    assert decode(lb_record(LBSPEC=term, LBLOINC=DROP)).specimen_type is specimen


def test_optional_variables_may_be_absent_null_or_empty() -> None:
    minimal = {
        "DOMAIN": "LB",
        "USUBJID": "PIT-0042",
        "LBTESTCD": "IL6",
        "LBTEST": "Interleukin 6",
        "LBORRES": "<1.5",
        "LBORRESU": "pg/mL",
        "LBSPEC": "SERUM",
        "LBMETHOD": "elecsys-il6",
        "LBDTC": "2026-11-20T09:30:00Z",
    }
    empty = {**minimal, "STUDYID": "", "SITEID": None, "LBLOINC": "", "LBSTRESC": "", "LBSTRESU": ""}

    for record in (minimal, empty):
        submission = decode(record)
        assert submission.site_id is None
        assert submission.reference is None
        assert (submission.comparator, submission.value) == (Comparator.LT, Decimal("1.5"))


def test_informational_variables_are_accepted_and_change_nothing() -> None:
    informational = {"VISITNUM": 1, "VISIT": "SCREENING", "LBBLFL": "Y", "LBNRIND": "NORMAL", "LBULOQ": 5000}

    assert decode(lb_record(**informational)) == decode(lb_record())


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        ({"DOMAIN": DROP}, "/DOMAIN"),
        ({"DOMAIN": "VS"}, "/DOMAIN"),
        ({"USUBJID": DROP}, "/USUBJID"),
        ({"USUBJID": "PIT 0042"}, "/USUBJID"),  # the plain form's identifier pattern
        ({"USUBJID": 42}, "/USUBJID"),
        ({"SITEID": "P/T"}, "/SITEID"),
        ({"STUDYID": 1}, "/STUDYID"),
        ({"LBSEQ": 0}, "/LBSEQ"),
        ({"LBSEQ": 1.5}, "/LBSEQ"),
        ({"LBSEQ": "3"}, "/LBSEQ"),
        ({"LBSEQ": True}, "/LBSEQ"),
        ({"LBTESTCD": DROP}, "/LBTESTCD"),
        ({"LBTESTCD": "IL6R"}, "/LBTESTCD"),
        ({"LBTEST": DROP}, "/LBTEST"),
        ({"LBTEST": "Interleukin 8"}, "/LBTEST"),  # another test's name under LBTESTCD 'IL6'
        ({"LBTEST": "Interleukin 6 receptor"}, "/LBTEST"),
        ({"LBTEST": " IL6"}, "/LBTEST"),
        ({"LBTEST": 6}, "/LBTEST"),
        ({"LBLOINC": "49732-1"}, "/LBLOINC"),
        ({"LBLOINC": "26881-3", "LBSPEC": "WHOLE BLOOD"}, "/LBLOINC"),
        ({"LBORRES": DROP}, "/LBORRES"),
        ({"LBORRES": 1.5}, "/LBORRES"),  # LBORRES is text
        ({"LBORRES": "NEGATIVE"}, "/LBORRES"),
        ({"LBORRES": "-1"}, "/LBORRES"),
        ({"LBORRES": "1,5"}, "/LBORRES"),
        ({"LBORRES": "1.5e3"}, "/LBORRES"),
        ({"LBORRES": "=1.5"}, "/LBORRES"),
        ({"LBORRES": "<0", "LBSTRESC": DROP, "LBLLOQ": DROP}, "/LBORRES"),
        ({"LBORRES": "1000000001", "LBSTRESC": DROP, "LBLLOQ": DROP}, "/LBORRES"),  # the plain bound, 1e9
        ({"LBORRES": "1.0000000000000001", "LBSTRESC": DROP, "LBLLOQ": DROP}, "/LBORRES"),  # 17 digits
        ({"LBORRESU": DROP}, "/LBORRESU"),
        ({"LBORRESU": "pg/ml"}, "/LBORRESU"),
        ({"LBORRESU": "ug/L"}, "/LBORRESU"),
        ({"LBSTRESU": "pg/dL"}, "/LBSTRESU"),
        ({"LBSTRESU": DROP}, "/LBSTRESU"),  # LBSTRESC and LBLLOQ need their unit
        ({"LBSTRESC": "1.5"}, "/LBSTRESC"),  # the sign dropped
        ({"LBSTRESC": "<15"}, "/LBSTRESC"),
        ({"LBSTRESC": "<1.5", "LBSTRESU": "ng/mL"}, "/LBSTRESC"),  # 1.5 pg/mL is 0.0015 ng/mL
        ({"LBSTRESC": "LOW"}, "/LBSTRESC"),
        ({"LBSTRESN": 1.5}, "/LBSTRESN"),  # null for a censored result
        ({"LBORRES": "20", "LBSTRESC": "20", "LBSTRESN": 21, "LBLLOQ": DROP}, "/LBSTRESN"),
        ({"LBORRES": "20", "LBSTRESC": DROP, "LBSTRESN": "20", "LBLLOQ": DROP}, "/LBSTRESN"),
        ({"LBLLOQ": 2.63}, "/LBLLOQ"),
        ({"LBLLOQ": "1.5"}, "/LBLLOQ"),
        ({"LBLLOQ": -1}, "/LBLLOQ"),
        ({"LBSPEC": DROP}, "/LBSPEC"),  # never guessed to be serum
        ({"LBSPEC": "serum"}, "/LBSPEC"),
        ({"LBSPEC": "URINE", "LBLOINC": DROP}, "/LBSPEC"),
        ({"LBMETHOD": DROP}, "/LBMETHOD"),
        ({"LBMETHOD": "ELISA KIT"}, "/LBMETHOD"),  # not an assay id
        ({"LBDTC": DROP}, "/LBDTC"),
        ({"LBDTC": "2026-11-20"}, "/LBDTC"),  # no time
        ({"LBDTC": "2026-11-20T09:30:00"}, "/LBDTC"),  # no offset
        ({"LBDTC": "2026-11-20T09:30"}, "/LBDTC"),
        ({"LBDTC": "20 Nov 2026 09:30 UTC"}, "/LBDTC"),
        ({"LBDTC": "2026-13-20T09:30:00Z"}, "/LBDTC"),  # the plain form's date-time parsing
        ({"LBSTAT": "NOT DONE", "LBREASND": "SAMPLE HAEMOLYSED"}, "/LBSTAT"),
        ({"LBSTAT": "DONE"}, "/LBSTAT"),
        ({"LBREASND": "NOT NEEDED"}, "/LBREASND"),
        ({"VISIT": {"name": "SCREENING"}}, "/VISIT"),
        ({"LBSPCUFL": "N"}, ""),  # not a variable this form knows: refused, pointing at the record
    ],
)
def test_refusals_point_at_the_variable(changes: dict[str, Any], pointer: str) -> None:
    assert refusal(lb_record(**changes))[0] == pointer


@pytest.mark.parametrize("name", ["Interleukin 6", "Interleukin-6", "IL-6", "IL6", "INTERLEUKIN 6", "il-6"])
def test_lbtest_may_name_interleukin_6_in_any_documented_spelling(name: str) -> None:
    assert decode(lb_record(LBTEST=name)) == decode(lb_record())


def test_a_wrong_lbtest_is_refused_without_its_value() -> None:
    pointer, message = refusal(lb_record(LBTEST=f"Interleukin {SECRET}"))

    assert pointer == "/LBTEST"
    assert "Interleukin 6" in message
    assert SECRET not in message


def test_studyid_is_not_compared_with_anything() -> None:
    # The reader has no settings: any STUDYID is recorded as sent (README, SDTM section).
    assert decode(lb_record(STUDYID="ANOTHER-STUDY")) == decode(lb_record())


def test_a_collection_time_in_the_future_is_refused() -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert refusal(lb_record(LBDTC=tomorrow))[0] == "/LBDTC"


def test_a_test_not_done_is_refused_before_its_missing_result() -> None:
    record = lb_record(LBSTAT="NOT DONE", LBORRES=DROP, LBORRESU=DROP, LBSTRESC=DROP, LBLLOQ=DROP)

    pointer, message = refusal(record)

    assert pointer == "/LBSTAT"
    assert "not done" in message


@pytest.mark.parametrize("document", [[], "LB", None, 1])
def test_anything_but_an_object_is_refused(document: Any) -> None:
    assert refusal(document)[0] == ""


@pytest.mark.parametrize(
    "changes",
    [
        {"LBORRES": f"<{SECRET}"},
        {"LBSTRESC": f"<{SECRET}"},
        {"LBSPEC": SECRET},
        {"LBORRESU": SECRET},
        {"USUBJID": f"{SECRET} X"},
        {"LBDTC": SECRET},
        {SECRET.replace(".", ""): "1"},
    ],
)
def test_errors_never_repeat_what_was_sent(changes: dict[str, Any]) -> None:
    pointer, message = refusal(lb_record(**changes))

    assert SECRET not in message
    assert SECRET.replace(".", "") not in message + pointer


def test_standardised_results_in_another_unit_agree_exactly() -> None:
    exact = decode(lb_record(LBORRES="1500", LBSTRESC="1.5", LBSTRESN=1.5, LBSTRESU="ng/mL", LBLLOQ=DROP))
    censored = decode(lb_record(LBORRES="<0.0015", LBORRESU="ng/mL", LBSTRESC="<1.5", LBLLOQ=1.5))

    assert (exact.value, exact.unit, exact.comparator) == (Decimal(1500), "pg/mL", None)
    assert (censored.value, censored.unit, censored.comparator) == (Decimal("0.0015"), "ng/mL", Comparator.LT)


def test_lblloq_is_a_check_only_for_a_result_below_a_limit() -> None:
    # With an exact result LBLLOQ is the assay's limit, not the result: any number is accepted.
    assert decode(lb_record(LBORRES="20", LBSTRESC="20", LBSTRESN=20, LBLLOQ=5)).value == Decimal(20)


def test_parse_result_keeps_the_text_exact() -> None:
    result = parse_result("<=0.0000000000000001", "/LBORRES")

    assert result.comparator is Comparator.LE
    assert result.value == Decimal("1E-16")
    assert result.text() == "<=0.0000000000000001"


def test_read_lb_record_builds_the_plain_body_and_reference() -> None:
    record = read_lb_record(parse_exact_json(json.dumps(lb_record()).encode()))

    assert record.reference == "LBSEQ:3"
    assert record.assessment == {
        "subject_id": "PIT-0042",
        "site_id": "PIT",
        "il6": {"value": Decimal("1.5"), "unit": "pg/mL", "comparator": "<", "assay": "elecsys-il6"},
        "specimen": {"type": "serum", "collected_at": "2026-11-20T09:30:00Z"},
    }


def test_the_schema_lists_every_variable_the_form_accepts() -> None:
    assert set(SDTM_LB_SCHEMA["properties"]) == set(VARIABLES) | set(INFORMATIONAL)
    assert SDTM_LB_SCHEMA["additionalProperties"] is False


@given(
    number=st.decimals(min_value=0, max_value=10**9, allow_nan=False, places=4),
    unit=st.sampled_from(["pg/mL", "ng/L", "ng/mL"]),
    comparator=st.sampled_from(["", "<", "<=", ">", ">="]),
)
def test_every_result_reads_as_the_plain_form_reads_it(number: Decimal, unit: str, comparator: str) -> None:
    text = format(number, "f")
    record = lb_record(LBORRES=comparator + text, LBORRESU=unit, LBSTRESC=DROP, LBLLOQ=DROP, LBSTRESU=DROP)
    plain_body = json.dumps(
        {
            "subject_id": "PIT-0042",
            "site_id": "PIT",
            "il6": {"value": "__VALUE__", "unit": unit, "assay": "elecsys-il6"}
            | ({"comparator": comparator} if comparator else {}),
            "specimen": {"type": "serum", "collected_at": "2026-11-20T09:30:00Z"},
        }
    ).replace('"__VALUE__"', text)
    try:
        plain = AssessmentIn.model_validate(parse_exact_json(plain_body.encode())).to_submission()
    except ValidationError:
        with pytest.raises((RequestValidationError, InvalidInput)):
            decode(record)
        return
    if comparator == "<" and number.is_zero():
        assert refusal(record)[0] == "/LBORRES"
        return

    assert decode(record) == Submission(**{**vars(plain), "reference": "LBSEQ:3"})


# The export: recorded decisions as LB rows.


def recorded(submission: Submission, seq: int, *, supersedes: uuid.UUID | None = None) -> dict[str, Any]:
    """A record as the audit export yields it (ids and times as text), decided by the bundled version."""
    assay = VERSION.definition.assay(submission.assay)
    measurement = measure(submission.value, submission.unit, submission.comparator, assay)
    specimen = Specimen(submission.specimen_type, submission.collected_at)
    return {
        "seq": seq,
        "id": str(uuid.uuid4()),
        "recorded_at": "2026-11-25T22:46:06.525000Z",
        "subject_id": submission.subject_id,
        "site_id": submission.site_id,
        "supersedes": None if supersedes is None else str(supersedes),
        "input": json.loads(json.dumps(input_document(submission))),
        "decision": json.loads(
            json.dumps(decision_document(VERSION.classifier.decide(measurement, specimen), VERSION))
        ),
    }


def result(subject: str, value: str, unit: str = "pg/mL", **changes: Any) -> Submission:
    comparator = next(
        (c for c in (Comparator.LE, Comparator.GE, Comparator.LT, Comparator.GT) if value.startswith(c)), None
    )
    number = Decimal(value.removeprefix(comparator or ""))
    fields: dict[str, Any] = {
        "subject_id": subject,
        "site_id": "PIT",
        "value": number,
        "unit": unit,
        "comparator": comparator,
        "assay": "elecsys-il6",
        "specimen_type": SpecimenType.SERUM,
        "collected_at": datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
    }
    return Submission(**{**fields, **changes})


def test_a_censored_decision_as_an_lb_row() -> None:
    record = recorded(result("PIT-0042", "<1.5", reference="LBSEQ:3"), seq=7)

    row = lb_row(record, "NCT01488318", 2)

    assert list(row) == list(LB_COLUMNS)
    assert row == {
        "STUDYID": "NCT01488318",
        "DOMAIN": "LB",
        "USUBJID": "PIT-0042",
        "LBSEQ": "2",
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
        "ASSESSID": record["id"],
        "AUDITSEQ": "7",
        "RECDTC": "2026-11-25T22:46:06.525000Z",
        "SUPERSEDES": "",
        "SRCREF": "LBSEQ:3",
    }


def test_an_exact_result_in_ng_per_ml_is_standardised_to_pg_per_ml() -> None:
    earlier = uuid.uuid4()
    record = recorded(result("PIT-0042", "0.02", "ng/mL"), seq=8, supersedes=earlier)

    row = lb_row(record, "NCT01488318", 1)

    assert (row["LBORRES"], row["LBORRESU"]) == ("0.02", "ng/mL")
    assert (row["LBSTRESC"], row["LBSTRESN"], row["LBSTRESU"]) == ("20", "20", "pg/mL")
    assert (row["ELIGSTAT"], row["IL6RISK"]) == ("ineligible", "high")
    assert row["SUPERSEDES"] == str(earlier)
    assert row["SRCREF"] == ""


@pytest.mark.parametrize(
    ("specimen", "term", "loinc"),
    [
        (SpecimenType.PLASMA, "PLASMA", "26881-3"),
        (SpecimenType.WHOLE_BLOOD, "WHOLE BLOOD", ""),
        (SpecimenType.OTHER_BODY_FLUID, "BODY FLUID", ""),
    ],
)
def test_other_specimens_and_their_loinc(specimen: SpecimenType, term: str, loinc: str) -> None:
    row = lb_row(recorded(result("PIT-0042", "3", specimen_type=specimen), seq=1), "NCT01488318", 1)

    assert (row["LBSPEC"], row["LBLOINC"], row["ELIGSTAT"], row["IL6RISK"]) == (
        term,
        loinc,
        "indeterminate",
        "",
    )


def test_an_exported_row_reads_back_as_the_same_submission() -> None:
    submission = decode(lb_record(LBORRES="<=1.5", LBSTRESC="<=1.5"))
    row = lb_row(recorded(submission, seq=1), "NCT01488318", 3)
    lb_variables = {name: value for name, value in row.items() if name in VARIABLES and value != ""}

    assert decode({**lb_variables, "LBSEQ": 3, "LBLLOQ": 1.5}) == submission


async def stream(records: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for record in records:
        yield record


async def test_lbseq_numbers_each_subject_over_the_whole_chain() -> None:
    records = [
        recorded(result("A", "<1.5"), seq=1),
        recorded(result("B", "3", site_id="UPMC"), seq=2),
        recorded(result("A", "20"), seq=3),
        recorded(result("B", "4", site_id="UPMC"), seq=4),
        recorded(result("A", "2"), seq=5),
    ]

    every = [row async for row in lb_rows(stream(records), "S")]
    later = [row async for row in lb_rows(stream(records), "S", from_seq=3)]
    one_site = [row async for row in lb_rows(stream(records), "S", site_id="UPMC")]

    assert [(r["USUBJID"], r["LBSEQ"], r["AUDITSEQ"]) for r in every] == [
        ("A", "1", "1"),
        ("B", "1", "2"),
        ("A", "2", "3"),
        ("B", "2", "4"),
        ("A", "3", "5"),
    ]
    assert [(r["USUBJID"], r["LBSEQ"]) for r in later] == [("A", "2"), ("B", "2"), ("A", "3")]
    assert [(r["USUBJID"], r["LBSEQ"]) for r in one_site] == [("B", "1"), ("B", "2")]
    assert {r["STUDYID"] for r in every} == {"S"}
