"""REDCap: a Data Entry Trigger read, a flat record read into a ``Submission``, a decision written back.

Pure: no I/O. The record's fields are validated by the same reader as the service's own JSON body (passed
in as ``read_plain``), so a REDCap result is held to exactly the same rules; every error points at the REDCap
field at fault (``/il6_value``: a JSON Pointer into the exported flat record) and never repeats its value.
Nothing missing is filled in: a required field that is absent from the export, or blank, is an error.
"""

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from app.domain.errors import InvalidInput
from app.service.documents import Submission

RECORD_MEDIA_TYPE = "application/vnd.redcap.record+json"
"""The media type a decision's audit record names for a REDCap export it was decided from."""

COMPLETE = "2"
"""REDCap's form status "Complete" (0 Incomplete, 1 Unverified, 2 Complete)."""

EVENT_FIELD = "redcap_event_name"
REPEAT_INSTRUMENT_FIELD = "redcap_repeat_instrument"
REPEAT_INSTANCE_FIELD = "redcap_repeat_instance"

# Each pattern guards input and is applied with fullmatch: "$" would also match before a final newline.
_PROJECT_ID = re.compile(r"[1-9][0-9]{0,9}")
_RECORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}")
"""REDCap record names as this receiver accepts them: no '/', so that a reference reads one way only."""
_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
"""REDCap instrument, unique event and field names: lowercase letters, digits and underscores."""
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
"""A plain decimal as REDCap's number fields hold it: no exponent, no grouping, no comma, no spaces."""
_LOCAL_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?")
"""REDCap's datetime fields ("2026-11-20 09:30", "2026-11-20 09:30:00"): a local time without an offset."""


PlainReader = Callable[[dict[str, Any]], Submission]
"""Reads the service's own JSON body into a submission, raising pydantic's ValidationError."""


class InvalidRecord(Exception):
    """A REDCap record that cannot be decided on as it stands; ``errors`` point at its fields."""

    def __init__(self, errors: Sequence[InvalidInput]) -> None:
        super().__init__("; ".join(error.pointer for error in errors))
        self.errors = tuple(errors)


@dataclass(frozen=True)
class FieldMap:
    """The REDCap field that holds each of the service's inputs (``None``: the project does not record it).

    ``record_id`` is the project's record id field (its first field), which names the record on export and
    import; ``subject_id`` is often the same field. A blank ``site_id`` or ``comparator`` is absent (no
    site; an exact value), as in the JSON body; every other field is required.
    """

    record_id: str = "record_id"
    subject_id: str = "record_id"
    site_id: str | None = None
    value: str = "il6_value"
    unit: str = "il6_unit"
    comparator: str | None = "il6_comparator"
    assay: str = "il6_assay"
    specimen_type: str = "il6_specimen_type"
    collected_at: str = "il6_collected_at"

    def pointer(self, body_pointer: str) -> str:
        """The REDCap field behind a JSON Pointer into the service's JSON body ("/il6/value" ->
        "/il6_value"); "" when no field is."""
        field = {
            "/subject_id": self.subject_id,
            "/site_id": self.site_id,
            "/il6/value": self.value,
            "/il6/unit": self.unit,
            "/il6/comparator": self.comparator,
            "/il6/assay": self.assay,
            "/specimen/type": self.specimen_type,
            "/specimen/collected_at": self.collected_at,
        }.get(body_pointer)
        return "" if field is None else f"/{field}"

    def export_fields(self, instrument: str) -> list[str]:
        """The fields to export: the record id, every mapped input and the instrument's status, nothing
        else (in particular not the written-back outputs, so that writing back leaves the input as read)."""
        named = [getattr(self, item.name) for item in fields(self)]
        wanted = [*named, f"{instrument}_complete"]
        return list(dict.fromkeys(name for name in wanted if name is not None))


@dataclass(frozen=True)
class WriteBackMap:
    """The REDCap fields a decision is written to (``None``: not written)."""

    eligibility: str | None = None
    risk_group: str | None = None
    assessment_id: str | None = None
    classifier: str | None = None

    def names(self) -> list[str]:
        return [name for name in (getattr(self, item.name) for item in fields(self)) if name is not None]


@dataclass(frozen=True)
class Trigger:
    """A Data Entry Trigger: REDCap's notice that a record was saved. It carries no data of the record."""

    project_id: int
    record: str
    instrument: str
    event: str | None
    status: str | None
    """The ``<instrument>_complete`` value the trigger reported."""
    repeat_instance: str | None

    @property
    def reference(self) -> str:
        """The result's id in REDCap, recorded with the decision: redcap:<project>/<record>/<event>/<form>."""
        return f"redcap:{self.project_id}/{self.record}/{self.event or '-'}/{self.instrument}"


def _optional(form: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str | None:
    value = form.get(name, "")
    if value == "":
        return None
    if not pattern.fullmatch(value):
        raise InvalidInput(f"/{name}", f"Not a valid {name} (pattern ^{pattern.pattern}$).")
    return value


def _required(form: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str:
    value = _optional(form, name, pattern)
    if value is None:
        raise InvalidInput(f"/{name}", "Field required.")
    return value


def read_trigger(form: Mapping[str, str]) -> Trigger:
    """A trigger's fields; the rest (username, redcap_url, project_url, ...) are not used.

    ``redcap_url`` in particular is never called: the record is read from the configured API only.
    """
    instrument = _required(form, "instrument", _NAME)
    return Trigger(
        project_id=int(_required(form, "project_id", _PROJECT_ID)),
        record=_required(form, "record", _RECORD),
        instrument=instrument,
        event=_optional(form, EVENT_FIELD, _NAME),
        status=form.get(f"{instrument}_complete"),
        repeat_instance=form.get(REPEAT_INSTANCE_FIELD) or None,
    )


def idempotency_key(trigger: Trigger, export: bytes) -> str:
    """The Idempotency-Key a trigger decides under: the same for the same form of the same record with the
    same exported data, so that REDCap firing again for unchanged data records one decision."""
    parts = [
        str(trigger.project_id),
        trigger.record,
        trigger.event or "-",
        trigger.instrument,
        hashlib.sha256(export).hexdigest(),
    ]
    return "redcap-" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def select_row(
    rows: Sequence[Mapping[str, Any]], trigger: Trigger, record_id_field: str
) -> Mapping[str, Any] | None:
    """The exported row of the trigger's record and event that is not a repeating instance; None when
    REDCap exported none (it has no such record or event)."""
    matching = [
        row
        for row in rows
        if row.get(record_id_field) == trigger.record
        and (trigger.event is None or row.get(EVENT_FIELD) == trigger.event)
        and not row.get(REPEAT_INSTRUMENT_FIELD)
        and not row.get(REPEAT_INSTANCE_FIELD)
    ]
    if not matching:
        return None
    if len(matching) > 1:
        raise InvalidRecord(
            [InvalidInput("/record", "REDCap exported more than one row for this record and event.")]
        )
    return matching[0]


def _text(row: Mapping[str, Any], field: str | None, *, required: bool) -> str | None:
    if field is None:
        return None
    if field not in row:
        raise InvalidInput(f"/{field}", "The field is not in the REDCap export: check IL6_REDCAP_FIELDS.")
    value = row[field]
    if not isinstance(value, str):
        raise InvalidInput(f"/{field}", "Should be text, as REDCap exports every field.")
    if value == "":
        if required:
            raise InvalidInput(f"/{field}", "Field required: it is blank in REDCap.")
        return None
    return value


def _decimal(text: str, field: str) -> Decimal:
    if not _DECIMAL.fullmatch(text):
        raise InvalidInput(
            f"/{field}", "Should be a plain decimal number, such as 1.5 (no exponent or comma)."
        )
    return Decimal(text)


def _instant(text: str, field: str, timezone: tzinfo | None) -> str:
    """An RFC 3339 date-time: as written when it has an offset; a REDCap local time placed in the project's
    configured time zone, refused when that is unset or when the local time is ambiguous or skipped."""
    if not _LOCAL_DATETIME.fullmatch(text):
        return text  # with an offset, or not a date-time at all: the model decides
    if timezone is None:
        raise InvalidInput(
            f"/{field}",
            "Has no UTC offset: record one, or set IL6_REDCAP_TIMEZONE to the time zone of the project's "
            "local times.",
        )
    local = datetime.fromisoformat(text)
    placed = local.replace(tzinfo=timezone)
    if placed.astimezone(UTC).astimezone(timezone).replace(tzinfo=None) != local:
        raise InvalidInput(f"/{field}", "Does not exist in the project's time zone (a clock change).")
    if placed.utcoffset() != local.replace(tzinfo=timezone, fold=1).utcoffset():
        raise InvalidInput(
            f"/{field}", "Is ambiguous in the project's time zone (a clock change): add an offset."
        )
    return placed.isoformat()


def _body_pointer(location: tuple[int | str, ...]) -> str:
    return "".join(f"/{part}" for part in location)


def submission_from_record(
    row: Mapping[str, Any],
    trigger: Trigger,
    field_map: FieldMap,
    read_plain: PlainReader,
    timezone: tzinfo | None = None,
) -> Submission:
    """Read one exported flat record as a submission, validated as the JSON body is; raises InvalidRecord
    listing every field at fault."""
    errors: list[InvalidInput] = []

    def read(field: str | None, *, required: bool = True) -> str | None:
        try:
            return _text(row, field, required=required)
        except InvalidInput as error:
            errors.append(error)
            return None

    subject_id = read(field_map.subject_id)
    site_id = read(field_map.site_id, required=False)
    value_text = read(field_map.value)
    unit = read(field_map.unit)
    comparator = read(field_map.comparator, required=False)
    assay = read(field_map.assay)
    specimen_type = read(field_map.specimen_type)
    collected_text = read(field_map.collected_at)
    value = collected_at = None
    try:
        if value_text is not None:
            value = _decimal(value_text, field_map.value)
    except InvalidInput as error:
        errors.append(error)
    try:
        if collected_text is not None:
            collected_at = _instant(collected_text, field_map.collected_at, timezone)
    except InvalidInput as error:
        errors.append(error)
    if errors:
        raise InvalidRecord(errors)

    document: dict[str, Any] = {
        "subject_id": subject_id,
        "il6": {"value": value, "unit": unit, "assay": assay},
        "specimen": {"type": specimen_type, "collected_at": collected_at},
    }
    if site_id is not None:
        document["site_id"] = site_id
    if comparator is not None:
        document["il6"]["comparator"] = comparator
    try:
        submission = read_plain(document)
    except ValidationError as error:
        raise InvalidRecord(
            [
                InvalidInput(field_map.pointer(_body_pointer(detail["loc"])), detail["msg"])
                for detail in error.errors(include_input=False, include_url=False)
            ]
        ) from None
    return replace(submission, reference=trigger.reference)


def in_record_terms(error: InvalidInput, field_map: FieldMap) -> InvalidRecord:
    """An error the rules raised about the JSON body ("/il6/assay"), pointed at the REDCap field instead."""
    return InvalidRecord([InvalidInput(field_map.pointer(error.pointer), error.message)])


def write_back_row(
    trigger: Trigger,
    field_map: FieldMap,
    outputs: WriteBackMap,
    assessment_id: uuid.UUID,
    decision: Mapping[str, Any],
) -> dict[str, str]:
    """The flat record that writes a decision (as the audit store holds it) into the trigger's record.

    A risk group of null is written as blank: the record must not keep an earlier decision's group.
    """
    values = {
        outputs.eligibility: decision["eligibility"]["status"],
        outputs.risk_group: decision["risk"]["group"] or "",
        outputs.assessment_id: str(assessment_id),
        outputs.classifier: f"{decision['classifier']['name']}@{decision['classifier']['version']}",
    }
    row = {field_map.record_id: trigger.record}
    if trigger.event is not None:
        row[EVENT_FIELD] = trigger.event
    row.update({field: value for field, value in values.items() if field is not None})
    return row
