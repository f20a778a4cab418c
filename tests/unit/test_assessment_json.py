"""The answer written from the record is the one the model writes, byte for byte, or the model writes it."""

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.api.routers.batch import _ITEM, BatchItemOut, _decided
from app.api.schemas.assessment_json import ASSESSMENT_JSON, _answer_document, assessment_json
from app.api.schemas.assessments import AssessmentOut
from app.domain.eligibility import EligibilityStatus
from app.domain.il6 import Comparator
from app.domain.reasons import ReasonCode
from app.domain.risk import RiskGroup
from app.domain.specimen import SpecimenType
from app.service.assessments import Outcome
from app.service.documents import decimal_text
from app.service.recorded_assessments import RecordedAssessment


def through_the_model(record: RecordedAssessment) -> bytes | type[BaseException]:
    try:
        return ASSESSMENT_JSON.dump_json(AssessmentOut.from_record(record))
    except Exception as error:  # the kind of refusal is what must agree
        return type(error)


def from_the_record(record: RecordedAssessment) -> bytes | type[BaseException]:
    try:
        return assessment_json(record)
    except Exception as error:
        return type(error)


def values(kind: Any) -> list[str]:
    return [member.value for member in kind]


OFFSETS = st.integers(min_value=-1439, max_value=1439).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
TIMES = st.datetimes(  # hypothesis takes naive bounds, and gives each time one of ``timezones``
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC) | OFFSETS,
)
STORED_NUMBERS = st.decimals(allow_nan=False, allow_infinity=False, places=None).map(decimal_text)
"""Decimals as the service stores them."""
REASONS = st.lists(
    st.fixed_dictionaries({"code": st.sampled_from(values(ReasonCode)), "message": st.text(max_size=40)}),
    max_size=3,
)


@st.composite
def stored_records(draw: st.DrawFn, numbers: st.SearchStrategy[str] = STORED_NUMBERS) -> RecordedAssessment:
    """Records whose every value is one the service writes."""
    optional_text = st.none() | st.text(max_size=20)
    return RecordedAssessment(
        id=draw(st.uuids()),
        seq=draw(st.integers(min_value=1, max_value=2**63 - 1)),
        prev_hash=draw(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)),
        hash=draw(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)),
        client_id=draw(st.text(max_size=20)),
        request_id=draw(optional_text),
        idempotency_key=draw(optional_text),
        subject_id=draw(st.text(max_size=20)),
        site_id=draw(optional_text),
        recorded_at=draw(TIMES),
        input={
            "specimen": {
                "type": draw(st.sampled_from(values(SpecimenType))),
                "collected_at": draw(TIMES).isoformat(),
            }
        },
        decision={
            "eligibility": {
                "status": draw(st.sampled_from(values(EligibilityStatus))),
                "reasons": draw(REASONS),
            },
            "risk": {
                "group": draw(st.none() | st.sampled_from(values(RiskGroup))),
                "cutoff_pg_per_ml": draw(numbers),
                "reasons": draw(REASONS),
            },
            "il6": {
                "pg_per_ml": draw(numbers),
                "comparator": draw(st.none() | st.sampled_from(values(Comparator))),
                "detectable": draw(st.none() | st.booleans()),
                "assay": draw(st.text(max_size=20)),
                "lod_pg_per_ml": draw(numbers),
            },
            "classifier": {"name": draw(st.text(max_size=20)), "version": "1.0.0", "digest": "ab" * 32},
        },
        supersedes=draw(st.none() | st.uuids()),
        correction_reason=draw(optional_text),
        superseded_by=draw(st.none() | st.uuids()),
    )


def a_record(**changes: Any) -> RecordedAssessment:
    """One record the service would write, with ``changes`` (``decision.il6.comparator=...``: nested)."""
    record: dict[str, Any] = {
        "id": uuid.UUID("6f1c2d1e-8c1b-4b8e-9a55-0b3c1f1d2e3f"),
        "seq": 7,
        "prev_hash": "b" * 64,
        "hash": "c" * 64,
        "client_id": "edc",
        "request_id": "r-1",
        "idempotency_key": None,
        "subject_id": "PIT-0042",
        "site_id": "PIT",
        "recorded_at": datetime(2026, 12, 3, 17, 3, 4, 801362, tzinfo=UTC),
        "input": {"specimen": {"type": "serum", "collected_at": "2026-11-20T09:30:00+00:00"}},
        "decision": {
            "eligibility": {"status": "eligible", "reasons": [{"code": "IL6_UNDETECTABLE", "message": "m"}]},
            "risk": {"group": "low", "cutoff_pg_per_ml": "13.5", "reasons": []},
            "il6": {
                "pg_per_ml": "1.5",
                "comparator": "<",
                "detectable": False,
                "assay": "elecsys-il6",
                "lod_pg_per_ml": "1.5",
            },
            "classifier": {"name": "il6-rules", "version": "1.0.0", "digest": "ab" * 32},
        },
        "supersedes": None,
        "correction_reason": None,
        "superseded_by": None,
    }
    for path, value in changes.items():
        *parents, name = path.split(".")
        target = record
        for parent in parents:
            target = target[parent]
        target[name] = value
    return RecordedAssessment(**record)


@settings(max_examples=400)
@given(stored_records())
def test_a_stored_record_is_written_from_itself_as_the_model_writes_it(record: RecordedAssessment) -> None:
    assert _answer_document(record) is not None  # the fast way, not the model's
    assert assessment_json(record) == through_the_model(record)


@settings(max_examples=200)
@given(
    stored_records(
        st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str) | st.text(max_size=8)
    )
)
@example(a_record(**{"decision.il6.pg_per_ml": "1.5E+3"}))
@example(a_record(**{"decision.il6.pg_per_ml": " 1.5"}))
@example(a_record(**{"decision.il6.pg_per_ml": "1_5"}))
@example(a_record(**{"decision.il6.pg_per_ml": 1.5}))
@example(a_record(**{"decision.il6.detectable": 0}))
@example(a_record(**{"decision.il6.comparator": "<<"}))
@example(a_record(**{"decision.eligibility.status": "ELIGIBLE"}))
@example(a_record(**{"decision.risk.reasons": [{"code": "nope", "message": "m"}]}))
@example(a_record(**{"decision.risk.reasons": "none"}))
@example(a_record(**{"input.specimen.collected_at": "2026-11-20T09:30:00Z"}))
@example(a_record(**{"input.specimen.collected_at": "2026-11-20T09:30:00"}))
@example(a_record(**{"input.specimen.collected_at": "2026-11-20T09:30:00+00:00:30"}))
@example(a_record(recorded_at=datetime(2026, 12, 3, tzinfo=timezone(timedelta(seconds=1050)))))
@example(a_record(id="6f1c2d1e-8c1b-4b8e-9a55-0b3c1f1d2e3f"))
@example(a_record(subject_id="lone \ud800"))
@example(a_record(**{"decision.il6.assay": "lone \udfff"}))
@example(a_record(seq=True))
@example(a_record(**{"decision.classifier": {"name": "il6-rules"}}))
def test_any_other_record_is_written_or_refused_as_the_model_does(record: RecordedAssessment) -> None:
    assert from_the_record(record) == through_the_model(record)


def test_values_the_model_converts_or_refuses_are_left_to_it() -> None:
    assert _answer_document(a_record()) is not None
    assert _answer_document(a_record(**{"decision.il6.pg_per_ml": "1.5E+3"})) is None
    assert _answer_document(a_record(**{"decision.il6.detectable": 0})) is None
    assert _answer_document(a_record(**{"input.specimen.collected_at": "2026-11-20T09:30:00Z"})) is None
    with pytest.raises(ValidationError):
        assessment_json(a_record(**{"decision.eligibility.status": "ELIGIBLE"}))


def test_the_numbers_are_the_decimals_written_as_json_numbers() -> None:
    written = assessment_json(
        a_record(**{"decision.il6.pg_per_ml": "1500", "decision.risk.cutoff_pg_per_ml": "0.0001"})
    )
    assert b'"pg_per_ml":1500.0' in written
    assert b'"cutoff_pg_per_ml":0.0001' in written
    assert b'"recorded_at":"2026-12-03T17:03:04.801362Z"' in written
    assert b'"collected_at":"2026-11-20T09:30:00Z"' in written
    assert (
        Decimal("1500")
        == AssessmentOut.from_record(a_record(**{"decision.il6.pg_per_ml": "1500"})).il6.pg_per_ml
    )


@settings(max_examples=100)
@given(stored_records(), st.integers(min_value=0, max_value=100_000), st.booleans())
def test_a_decided_batch_item_is_the_one_the_item_model_writes(
    record: RecordedAssessment, index: int, replayed: bool
) -> None:
    expected = _ITEM.dump_json(
        BatchItemOut(index=index, status=201, replayed=replayed, assessment=AssessmentOut.from_record(record))
    )
    assert _decided(index, Outcome(record, replayed=replayed)) == expected
