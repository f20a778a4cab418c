"""Reading a training cohort from CSV, each IL6 result normalised by the domain's own unit and assay code.

Columns (a header row first; rows are numbered as a spreadsheet shows them, the header being row 1):

- ``il6``: the result as the laboratory reported it: ``12.3``, ``<1.5``, ``<=1.5``, ``>5000``, ``>=5000``;
- ``unit``: a UCUM code the domain accepts (``app.domain.il6.UNITS``: pg/mL, ng/L, ng/mL);
- ``assay``: an assay id of the base version, whose assay definitions the fitted version copies;
- ``outcome``: ``stable`` or ``progressive``; may be empty when survival is given (such a subject enters
  the log-rank test only);
- optional ``survival_months`` (>= 0) and ``event`` (1 = event observed, 0 = censored), both or neither;
- optional ``subject_id``: used only to refuse a repeated subject, never stored.

Censoring rule (spec): a result reported as '<x' enters the fit at x, its upper bound; '>x' enters at x, its
lower bound. Errors name the row and column, never the value (STYLE.md habit 6).
"""

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from app.domain.classifiers.base import ClassifierDefinition
from app.domain.errors import InvalidInput
from app.domain.il6 import Comparator, measure

MIN_PER_CLASS = 3
"""Fewest subjects of each outcome training accepts: below it no stratified cross-validation has three
folds. A floor against nonsense, not a sample size that makes a model trustworthy (see the warnings)."""

CENSORING_RULE = (
    "a result reported as '<x' enters the fit at x, its upper bound; a result reported as '>x' enters at x, "
    "its lower bound"
)
REQUIRED = ("il6", "unit", "assay", "outcome")
OPTIONAL = ("survival_months", "event", "subject_id")
# Longest prefix first, so "<=" is not read as "<" followed by "=".
_PREFIXES = (Comparator.LE, Comparator.GE, Comparator.LT, Comparator.GT)
_POINTER_COLUMNS = {"value": "il6", "unit": "unit", "assay": "assay"}


class Outcome(StrEnum):
    STABLE = "stable"
    PROGRESSIVE = "progressive"


class TrainingDataError(ValueError):
    """Training data that cannot be used as given; names the row and column, never the value."""

    def __init__(self, message: str, *, row: int | None = None, column: str | None = None) -> None:
        where = ", ".join(
            part for part in (f"row {row}" if row else "", f"column {column}" if column else "") if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.row = row
        self.column = column


@dataclass(frozen=True)
class TrainingRow:
    """One subject: the value entering the fit (pg/mL, after the censoring rule) and the outcomes."""

    row: int
    pg_per_ml: float
    comparator: Comparator | None
    outcome: Outcome | None
    survival_months: float | None
    event: bool | None


@dataclass(frozen=True)
class TrainingData:
    """A cohort read from CSV against a base version's assays; ``data_sha256`` pins the CSV bytes."""

    rows: tuple[TrainingRow, ...]
    data_sha256: str
    base_ref: str

    @property
    def labelled(self) -> tuple[TrainingRow, ...]:
        """The subjects with an outcome: the ones the model is fitted and cross-validated on."""
        return tuple(row for row in self.rows if row.outcome is not None)

    def features(self) -> NDArray[np.float64]:
        return np.array([[row.pg_per_ml] for row in self.labelled], dtype=np.float64)

    def labels(self) -> NDArray[np.str_]:
        return np.array([str(row.outcome) for row in self.labelled])

    def outcome_counts(self) -> dict[str, int]:
        return {o.value: sum(row.outcome is o for row in self.labelled) for o in Outcome}

    @property
    def censored_n(self) -> int:
        return sum(row.comparator is not None for row in self.labelled)

    @property
    def with_survival(self) -> tuple[TrainingRow, ...]:
        return tuple(row for row in self.rows if row.survival_months is not None)


def _il6(text: str, unit: str, assay_id: str, base: ClassifierDefinition, row: int) -> TrainingRow:
    comparator = next((c for c in _PREFIXES if text.startswith(c.value)), None)
    number = text[len(comparator.value) :] if comparator else text
    try:
        value = Decimal(number.strip())
    except InvalidOperation:
        raise TrainingDataError(
            "not a number, optionally after <, <=, > or >=", row=row, column="il6"
        ) from None
    try:
        measurement = measure(value, unit, comparator, base.assay(assay_id))
    except InvalidInput as error:
        column = _POINTER_COLUMNS.get(error.pointer.rsplit("/", 1)[-1], "il6")
        raise TrainingDataError(error.message, row=row, column=column) from None
    pg_per_ml = float(measurement.pg_per_ml)
    if not (math.isfinite(pg_per_ml) and pg_per_ml > 0):
        raise TrainingDataError("must be above 0 pg/mL: the model works on log IL6", row=row, column="il6")
    return TrainingRow(row, pg_per_ml, comparator, None, None, None)


def _survival(record: dict[str, str], row: int) -> tuple[float | None, bool | None]:
    months_text, event_text = record.get("survival_months", ""), record.get("event", "")
    if not months_text and not event_text:
        return None, None
    if not months_text or not event_text:
        missing = "survival_months" if not months_text else "event"
        raise TrainingDataError("survival_months and event are given together", row=row, column=missing)
    try:
        months = Decimal(months_text)
    except InvalidOperation:
        raise TrainingDataError("not a number", row=row, column="survival_months") from None
    if not months.is_finite() or months < 0:
        raise TrainingDataError("must be a finite number >= 0", row=row, column="survival_months")
    if event_text not in ("0", "1"):
        raise TrainingDataError("must be 1 (event observed) or 0 (censored)", row=row, column="event")
    return float(months), event_text == "1"


def _row(record: dict[str, str], base: ClassifierDefinition, row: int) -> TrainingRow:
    for column in ("il6", "unit", "assay"):
        if not record.get(column):
            raise TrainingDataError("is empty", row=row, column=column)
    parsed = _il6(record["il6"], record["unit"], record["assay"], base, row)
    months, event = _survival(record, row)
    outcome_text = record.get("outcome", "")
    if outcome_text:
        try:
            outcome: Outcome | None = Outcome(outcome_text)
        except ValueError:
            raise TrainingDataError("must be 'stable' or 'progressive'", row=row, column="outcome") from None
    elif months is None:
        raise TrainingDataError(
            "is empty; it may be only when survival_months and event are given", row=row, column="outcome"
        )
    else:
        outcome = None
    return TrainingRow(row, parsed.pg_per_ml, parsed.comparator, outcome, months, event)


def _header(reader: "csv.DictReader[str]") -> None:
    columns = reader.fieldnames
    if not columns:
        raise TrainingDataError("the file has no header row", row=1)
    for column in columns:
        if column not in REQUIRED + OPTIONAL:
            raise TrainingDataError(
                f"unknown column; expected {', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)}", row=1
            )
    for column in REQUIRED:
        if column not in columns:
            raise TrainingDataError("required column is missing", row=1, column=column)
    if ("survival_months" in columns) != ("event" in columns):
        missing = "event" if "survival_months" in columns else "survival_months"
        raise TrainingDataError("survival_months and event come together", row=1, column=missing)
    if len(set(columns)) != len(columns):
        raise TrainingDataError("a column is named twice", row=1)


def read_training_csv(data: bytes, base: ClassifierDefinition) -> TrainingData:
    """Parse and normalise a training cohort; refuse bad rows and too few subjects of either outcome."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TrainingDataError("the file is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    rows: list[TrainingRow] = []
    subjects: set[str] = set()
    try:
        _header(reader)
        for row, record in enumerate(reader, start=2):
            if None in record:
                raise TrainingDataError("has more fields than the header", row=row)
            cleaned = {key: (value or "").strip() for key, value in record.items()}
            subject = cleaned.get("subject_id", "")
            if subject:
                if subject in subjects:
                    raise TrainingDataError("repeats an earlier row's subject", row=row, column="subject_id")
                subjects.add(subject)
            rows.append(_row(cleaned, base, row))
    except csv.Error:
        raise TrainingDataError("the file is not well-formed CSV", row=reader.line_num or None) from None
    result = TrainingData(
        rows=tuple(rows),
        data_sha256="sha256:" + hashlib.sha256(data).hexdigest(),
        base_ref=base.ref,
    )
    counts = result.outcome_counts()
    if min(counts.values()) < MIN_PER_CLASS:
        found = ", ".join(f"{label} {count}" for label, count in counts.items())
        raise TrainingDataError(f"needs at least {MIN_PER_CLASS} subjects of each outcome; found {found}")
    return result
