"""What the API accepts is stored exactly as submitted, and decides the same way again from storage."""

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from app.api.exact_json import parse_exact_json
from app.api.schemas.assessments import AssessmentIn
from app.domain.classifiers.registry import load_registry
from app.domain.errors import InvalidInput
from app.domain.il6 import measure
from app.domain.specimen import Specimen
from app.service.documents import Submission, decision_document, input_document, submission_from_input

VERSION = load_registry().resolve(None)
FACTORS = {"pg/mL": Decimal(1), "ng/L": Decimal(1), "ng/mL": Decimal(1000)}

# Decimal text with up to 40 digits, around the limit of detection and the cutoff.
digit_runs = st.text(alphabet="0123456789", min_size=1, max_size=40)
# Long runs of nines just under the limits are where a 28-digit context would round a value onto them.
values = st.one_of(
    st.builds(lambda whole, fraction: f"{int(whole) % 100}.{fraction}", digit_runs, digit_runs),
    st.builds(
        lambda base, nines: base + "9" * nines,
        st.sampled_from(["1.4", "17.84", "0.0014", "0.01784"]),
        st.integers(min_value=1, max_value=40),
    ),
)


def request_body(value: str, unit: str, comparator: str | None) -> bytes:
    il6: dict[str, Any] = {"value": "__VALUE__", "unit": unit, "assay": "elecsys-il6"}
    if comparator is not None:
        il6["comparator"] = comparator
    body = {
        "subject_id": "S-1",
        "il6": il6,
        "specimen": {"type": "serum", "collected_at": "2026-11-20T09:30:00Z"},
    }
    return json.dumps(body).replace('"__VALUE__"', value).encode()


def decision_for(submission: Submission) -> dict[str, Any]:
    assay = VERSION.definition.assay(submission.assay)
    measurement = measure(submission.value, submission.unit, submission.comparator, assay)
    specimen = Specimen(submission.specimen_type, submission.collected_at)
    return decision_document(VERSION.classifier.decide(measurement, specimen), VERSION)


@given(
    value=values,
    unit=st.sampled_from(list(FACTORS)),
    comparator=st.sampled_from([None, "<", "<=", ">", ">="]),
)
def test_accepted_values_are_stored_exactly_and_replay_identically(
    value: str, unit: str, comparator: str | None
) -> None:
    try:
        submission = AssessmentIn.model_validate(parse_exact_json(request_body(value, unit, comparator)))
    except ValidationError:
        return  # refused with a 422 (more than 15 significant digits or decimal places)
    try:
        decided = decision_for(submission.to_submission())
    except InvalidInput:
        return  # '< 0', refused with a 422

    stored_input = json.loads(json.dumps(input_document(submission.to_submission())))
    stored_decision = json.loads(json.dumps(decided))
    assert Decimal(stored_input["il6"]["value"]) == Decimal(value)
    assert Decimal(stored_decision["il6"]["pg_per_ml"]) == Decimal(value) * FACTORS[unit]
    replayed = submission_from_input(stored_input)
    assert replayed == submission.to_submission()
    assert decision_for(replayed) == stored_decision


def test_thirty_digit_values_are_refused_not_rounded() -> None:
    body = request_body("1.4999999999999999999999999999999", "pg/mL", None)
    with pytest.raises(ValidationError) as caught:
        AssessmentIn.model_validate(parse_exact_json(body))
    assert caught.value.errors()[0]["type"] == "decimal_precision"
