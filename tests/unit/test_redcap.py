"""REDCap: a trigger read, a flat record read as a submission (strictly), a decision written back; the
client's checks of what REDCap answers; the settings that configure it all."""

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from app.api.intake import plain_submission
from app.domain.errors import InvalidInput
from app.domain.il6 import Comparator
from app.domain.specimen import SpecimenType
from app.interop.redcap import (
    FieldMap,
    InvalidRecord,
    Trigger,
    WriteBackMap,
    idempotency_key,
    in_record_terms,
    read_trigger,
    select_row,
    submission_from_record,
    write_back_row,
)
from app.service.redcap_client import MAX_RESPONSE_BYTES, RedcapClient, RedcapError
from app.settings import Environment, RedcapFields, Settings

FIELDS = FieldMap()
NEW_YORK = ZoneInfo("America/New_York")
TOKEN = "0123456789ABCDEF0123456789ABCDEF"
TRIGGER_SECRET = "det-secret-0123456789abcdefghijklmn"


def trigger(**changes: Any) -> Trigger:
    values: dict[str, Any] = {
        "project_id": 7,
        "record": "PIT-0042",
        "instrument": "il6_result",
        "event": None,
        "status": "2",
        "repeat_instance": None,
    }
    return Trigger(**{**values, **changes})


def record(**changes: str) -> dict[str, str]:
    row = {
        "record_id": "PIT-0042",
        "il6_value": "1.5",
        "il6_unit": "pg/mL",
        "il6_comparator": "<",
        "il6_assay": "elecsys-il6",
        "il6_specimen_type": "serum",
        "il6_collected_at": "2026-11-20T09:30:00Z",
        "il6_result_complete": "2",
    }
    return {**row, **changes}


def errors_of(raised: pytest.ExceptionInfo[InvalidRecord]) -> dict[str, str]:
    return {error.pointer: error.message for error in raised.value.errors}


# --- the trigger ----------------------------------------------------------------------------------------


def test_a_trigger_is_read_from_its_form_fields() -> None:
    form = {
        "redcap_url": "https://redcap.example.org/",
        "project_url": "https://redcap.example.org/redcap_v14/index.php?pid=7",
        "project_id": "7",
        "username": "coordinator",
        "record": "PIT-0042",
        "instrument": "il6_result",
        "redcap_event_name": "baseline_arm_1",
        "redcap_data_access_group": "pitt",
        "il6_result_complete": "2",
    }

    read = read_trigger(form)

    assert read == trigger(event="baseline_arm_1")
    assert read.reference == "redcap:7/PIT-0042/baseline_arm_1/il6_result"


def test_a_classic_project_has_no_event_and_a_dash_in_the_reference() -> None:
    read = read_trigger(
        {"project_id": "7", "record": "12", "instrument": "il6_result", "redcap_event_name": ""}
    )

    assert read.event is None
    assert read.status is None
    assert read.reference == "redcap:7/12/-/il6_result"


@pytest.mark.parametrize("missing", ["project_id", "record", "instrument"])
def test_a_trigger_without_a_required_field_is_refused(missing: str) -> None:
    form = {"project_id": "7", "record": "12", "instrument": "il6_result"}
    del form[missing]

    with pytest.raises(InvalidInput) as raised:
        read_trigger(form)

    assert raised.value.pointer == f"/{missing}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project_id", "07"),
        ("project_id", "seven"),
        ("record", "12/../13"),
        ("record", "x" * 101),
        ("instrument", "IL6 Result"),
        ("redcap_event_name", "baseline arm"),
        # "$" matches before a final newline: each pattern must match the whole field.
        ("project_id", "7\n"),
        ("record", "12\n"),
        ("instrument", "il6_result\n"),
        ("redcap_event_name", "baseline_arm_1\n"),
    ],
)
def test_a_malformed_trigger_field_is_refused_without_its_value(field: str, value: str) -> None:
    form = {"project_id": "7", "record": "12", "instrument": "il6_result", field: value}

    with pytest.raises(InvalidInput) as raised:
        read_trigger(form)

    assert raised.value.pointer == f"/{field}"
    assert value not in raised.value.message


# --- the record -----------------------------------------------------------------------------------------


def test_a_record_is_read_as_the_json_body_would_be() -> None:
    submission = submission_from_record(record(), trigger(), FIELDS, plain_submission)

    assert submission.subject_id == "PIT-0042"
    assert submission.site_id is None
    assert submission.value == Decimal("1.5")
    assert submission.unit == "pg/mL"
    assert submission.comparator is Comparator.LT
    assert submission.assay == "elecsys-il6"
    assert submission.specimen_type is SpecimenType.SERUM
    assert submission.collected_at == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert submission.classifier is None
    assert submission.supersedes is None
    assert submission.reference == "redcap:7/PIT-0042/-/il6_result"


def test_the_value_is_parsed_exactly() -> None:
    submission = submission_from_record(
        record(il6_value="17.8499999999999"), trigger(), FIELDS, plain_submission
    )

    assert submission.value == Decimal("17.8499999999999")
    assert str(submission.value) == "17.8499999999999"


def test_a_blank_comparator_is_an_exact_value_and_a_blank_site_no_site() -> None:
    fields = FieldMap(site_id="site")

    submission = submission_from_record(
        record(il6_comparator="", site=""), trigger(), fields, plain_submission
    )

    assert submission.comparator is None
    assert submission.site_id is None


def test_fields_are_read_where_the_map_says() -> None:
    fields = FieldMap(
        record_id="study_no",
        subject_id="subject",
        site_id="redcap_data_access_group",
        value="lab_il6",
        comparator=None,
    )
    row = {**record(), "study_no": "12", "subject": "PIT-0099", "redcap_data_access_group": "pitt"}
    row["lab_il6"] = row.pop("il6_value")

    submission = submission_from_record(row, trigger(record="12"), fields, plain_submission)

    assert submission.subject_id == "PIT-0099"
    assert submission.site_id == "pitt"
    assert submission.comparator is None  # not recorded by this project: every value is exact
    assert submission.value == Decimal("1.5")


@pytest.mark.parametrize(
    "field", ["il6_value", "il6_unit", "il6_assay", "il6_specimen_type", "il6_collected_at"]
)
def test_a_blank_required_field_is_refused_not_guessed(field: str) -> None:
    with pytest.raises(InvalidRecord) as raised:
        submission_from_record(record(**{field: ""}), trigger(), FIELDS, plain_submission)

    assert errors_of(raised) == {f"/{field}": "Field required: it is blank in REDCap."}


def test_a_field_missing_from_the_export_points_at_the_configuration() -> None:
    row = record()
    del row["il6_value"]

    with pytest.raises(InvalidRecord) as raised:
        submission_from_record(row, trigger(), FIELDS, plain_submission)

    assert list(errors_of(raised)) == ["/il6_value"]
    assert "IL6_REDCAP_FIELDS" in errors_of(raised)["/il6_value"]


def test_every_field_at_fault_is_listed() -> None:
    with pytest.raises(InvalidRecord) as raised:
        submission_from_record(
            record(il6_value="", il6_unit="", record_id=""), trigger(), FIELDS, plain_submission
        )

    assert set(errors_of(raised)) == {"/il6_value", "/il6_unit", "/record_id"}


@pytest.mark.parametrize(
    "text",
    [
        "1,5",
        "1.5e0",
        "1E3",
        " 1.5",
        "1.5 ",
        "1.5\n",
        "NaN",
        "Infinity",
        "+1.5",
        "1.5.1",
        "one",
        "0x10",
        "1_000",
    ],
)
def test_a_value_that_is_not_a_plain_decimal_is_refused(text: str) -> None:
    with pytest.raises(InvalidRecord) as raised:
        submission_from_record(record(il6_value=text), trigger(), FIELDS, plain_submission)

    assert errors_of(raised) == {
        "/il6_value": "Should be a plain decimal number, such as 1.5 (no exponent or comma)."
    }


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        ({"il6_value": "-1"}, "/il6_value"),
        ({"il6_value": "1000000001"}, "/il6_value"),
        ({"il6_value": "1.1234567890123456"}, "/il6_value"),
        ({"il6_unit": "pg/ml"}, "/il6_unit"),
        ({"il6_comparator": "~"}, "/il6_comparator"),
        ({"il6_assay": "elecsys il6"}, "/il6_assay"),
        ({"il6_specimen_type": "Serum"}, "/il6_specimen_type"),
        ({"il6_collected_at": "2025-03-14"}, "/il6_collected_at"),  # a date alone
        ({"il6_collected_at": "yesterday"}, "/il6_collected_at"),
        ({"record_id": "PIT 0042"}, "/record_id"),
    ],
)
def test_the_json_bodys_rules_apply_with_pointers_at_redcap_fields(
    changes: dict[str, str], pointer: str
) -> None:
    with pytest.raises(InvalidRecord) as raised:
        submission_from_record(record(**changes), trigger(), FIELDS, plain_submission)

    assert list(errors_of(raised)) == [pointer]
    (value,) = changes.values()
    assert value not in errors_of(raised)[pointer]


def test_a_collection_time_in_the_future_is_refused() -> None:
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()

    with pytest.raises(InvalidRecord) as raised:
        submission_from_record(record(il6_collected_at=future), trigger(), FIELDS, plain_submission)

    assert list(errors_of(raised)) == ["/il6_collected_at"]


def test_an_offset_is_kept_as_written() -> None:
    submission = submission_from_record(
        record(il6_collected_at="2026-11-20T09:30:00-05:00"), trigger(), FIELDS, plain_submission
    )

    assert submission.collected_at.utcoffset() == timedelta(hours=-5)
    assert submission.collected_at == datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-11-20 09:30", "2026-11-20 09:30:00", "2026-11-20T09:30"])
def test_a_local_redcap_time_needs_the_projects_time_zone(text: str) -> None:
    with pytest.raises(InvalidRecord) as raised:
        submission_from_record(record(il6_collected_at=text), trigger(), FIELDS, plain_submission)

    assert "IL6_REDCAP_TIMEZONE" in errors_of(raised)["/il6_collected_at"]


def test_a_local_redcap_time_with_a_final_newline_is_not_a_local_time() -> None:
    with pytest.raises(InvalidRecord) as raised:
        submission_from_record(
            record(il6_collected_at="2026-11-20 09:30\n"), trigger(), FIELDS, plain_submission, NEW_YORK
        )

    assert list(errors_of(raised)) == ["/il6_collected_at"]


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-11-20 09:30", datetime(2026, 11, 20, 14, 30, tzinfo=UTC)),  # EST, UTC-5
        ("2026-07-01 09:30:15", datetime(2026, 7, 1, 13, 30, 15, tzinfo=UTC)),  # EDT, UTC-4
    ],
)
def test_a_local_redcap_time_is_placed_in_the_configured_zone(text: str, utc: datetime) -> None:
    submission = submission_from_record(
        record(il6_collected_at=text), trigger(), FIELDS, plain_submission, NEW_YORK
    )

    assert submission.collected_at == utc


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-11-01 01:30", "ambiguous"),  # New York's clocks go back at 02:00: 01:30 happens twice
        ("2026-03-08 02:30", "does not exist"),  # and forward at 02:00: 02:30 never happens
    ],
)
def test_a_local_time_at_a_clock_change_is_refused_not_guessed(text: str, why: str) -> None:
    with pytest.raises(InvalidRecord) as raised:
        submission_from_record(record(il6_collected_at=text), trigger(), FIELDS, plain_submission, NEW_YORK)

    assert why in errors_of(raised)["/il6_collected_at"].lower()


def test_a_fixed_offset_zone_places_local_times_too() -> None:
    submission = submission_from_record(
        record(il6_collected_at="2026-11-20 09:30"),
        trigger(),
        FIELDS,
        plain_submission,
        timezone(timedelta(hours=1)),
    )

    assert submission.collected_at == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


def test_an_error_from_the_rules_points_at_the_redcap_field() -> None:
    error = InvalidInput("/il6/assay", "Unknown assay.")

    translated = in_record_terms(error, FieldMap(assay="lab_assay"))

    assert [(e.pointer, e.message) for e in translated.errors] == [("/lab_assay", "Unknown assay.")]
    assert in_record_terms(InvalidInput("/classifier", "x"), FIELDS).errors[0].pointer == ""


# --- selecting the row ----------------------------------------------------------------------------------


def test_the_row_of_the_triggers_record_and_event_is_selected() -> None:
    rows = [
        record(redcap_event_name="screening_arm_1", il6_value="30"),
        record(redcap_event_name="baseline_arm_1"),
        record(
            redcap_event_name="baseline_arm_1",
            redcap_repeat_instrument="il6_result",
            redcap_repeat_instance="1",
        ),
    ]

    row = select_row(rows, trigger(event="baseline_arm_1"), "record_id")

    assert row is rows[1]


@pytest.mark.parametrize(
    "rows",
    [[], [record(record_id="PIT-0043")], [record(redcap_event_name="other_arm_1")]],
    ids=["empty", "another-record", "another-event"],
)
def test_no_matching_row_is_none(rows: list[dict[str, str]]) -> None:
    # Answered as an ignored trigger is: a distinct error would tell a caller which records exist.
    assert select_row(rows, trigger(event="baseline_arm_1"), "record_id") is None


def test_two_matching_rows_are_refused_as_ambiguous() -> None:
    with pytest.raises(InvalidRecord) as raised:
        select_row([record(), record()], trigger(), "record_id")

    assert "more than one" in errors_of(raised)["/record"]


# --- the fields to export, the idempotency key ----------------------------------------------------------


def test_the_export_asks_for_the_inputs_and_the_status_only() -> None:
    assert FIELDS.export_fields("il6_result") == [
        "record_id",
        "il6_value",
        "il6_unit",
        "il6_comparator",
        "il6_assay",
        "il6_specimen_type",
        "il6_collected_at",
        "il6_result_complete",
    ]
    assert "site" in FieldMap(site_id="site", comparator=None).export_fields("il6_result")
    assert "il6_comparator" not in FieldMap(comparator=None).export_fields("il6_result")


def test_the_idempotency_key_follows_the_record_and_its_data() -> None:
    export = b'[{"record_id":"PIT-0042","il6_value":"1.5"}]'
    key = idempotency_key(trigger(), export)

    assert key == idempotency_key(trigger(), export)
    assert key.startswith("redcap-")
    assert len(key) == len("redcap-") + 64
    assert key != idempotency_key(trigger(), export.replace(b"1.5", b"1.6"))
    assert key != idempotency_key(trigger(event="baseline_arm_1"), export)
    assert key != idempotency_key(trigger(record="PIT-0043"), export)
    assert key != idempotency_key(trigger(project_id=8), export)
    assert key != idempotency_key(trigger(instrument="il6_repeat"), export)


# --- writing back ---------------------------------------------------------------------------------------

DECISION = {
    "eligibility": {"status": "eligible", "reasons": []},
    "risk": {"group": "low", "cutoff_pg_per_ml": "17.85", "reasons": []},
    "classifier": {"name": "il6-enrichment", "version": "1.0.0", "digest": "sha256:0"},
}
ASSESSMENT_ID = uuid.UUID("9625694a-f4fd-4047-9562-1b5f3ea9f3a0")
OUTPUTS = WriteBackMap(
    eligibility="il6_eligibility",
    risk_group="il6_risk_group",
    assessment_id="il6_assessment_id",
    classifier="il6_classifier",
)


def test_the_decision_is_written_to_the_mapped_fields() -> None:
    row = write_back_row(trigger(), FIELDS, OUTPUTS, ASSESSMENT_ID, DECISION)

    assert row == {
        "record_id": "PIT-0042",
        "il6_eligibility": "eligible",
        "il6_risk_group": "low",
        "il6_assessment_id": "9625694a-f4fd-4047-9562-1b5f3ea9f3a0",
        "il6_classifier": "il6-enrichment@1.0.0",
    }


def test_a_longitudinal_record_is_written_to_its_event() -> None:
    row = write_back_row(
        trigger(event="baseline_arm_1"), FieldMap(record_id="study_no"), OUTPUTS, ASSESSMENT_ID, DECISION
    )

    assert row["study_no"] == "PIT-0042"
    assert row["redcap_event_name"] == "baseline_arm_1"


def test_no_risk_group_is_written_as_blank_and_unmapped_outputs_not_at_all() -> None:
    decision = {**DECISION, "risk": {"group": None}}

    row = write_back_row(
        trigger(), FIELDS, WriteBackMap(risk_group="il6_risk_group"), ASSESSMENT_ID, decision
    )

    assert row == {"record_id": "PIT-0042", "il6_risk_group": ""}


# --- the client's checks of what REDCap answers ---------------------------------------------------------


def client_answering(handler: Any) -> RedcapClient:
    return RedcapClient(
        "https://redcap.example.org/api/", SecretStr(TOKEN), 5.0, transport=httpx.MockTransport(handler)
    )


async def test_an_export_is_asked_for_as_the_api_documents_it() -> None:
    sent: list[httpx.Request] = []
    body = b'[{"record_id":"12","il6_value":"1.5"}]'

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=body)

    client = client_answering(handler)
    export = await client.export_record(
        "12", ["record_id", "il6_value", "redcap_data_access_group"], "base_arm_1"
    )
    await client.aclose()

    assert export.body == body
    assert export.rows == [{"record_id": "12", "il6_value": "1.5"}]
    (request,) = sent
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {
        "token": TOKEN,
        "content": "record",
        "action": "export",
        "format": "json",
        "type": "flat",
        "returnFormat": "json",
        "rawOrLabel": "raw",
        "exportDataAccessGroups": "true",
        "records[0]": "12",
        "fields[0]": "record_id",
        "fields[1]": "il6_value",
        "events[0]": "base_arm_1",
    }


@pytest.mark.parametrize(
    ("status", "body", "why"),
    [
        (403, b'{"error": "You do not have permissions to use the API"}', "HTTP 403"),
        (500, b"", "HTTP 500"),
        (200, b"<html>login</html>", "not UTF-8 JSON"),
        (200, b"\xff\xfe", "not UTF-8 JSON"),
        (200, b'{"error": "no"}', "not a JSON array"),
        (200, b'[{"il6_value": 1.5}]', "not a JSON array"),
        (200, b"[1]", "not a JSON array"),
        (200, b"[" + b" " * MAX_RESPONSE_BYTES + b"]", "too large"),
    ],
)
async def test_an_unusable_export_is_an_error_that_repeats_nothing(
    status: int, body: bytes, why: str
) -> None:
    client = client_answering(lambda _: httpx.Response(status, content=body))

    with pytest.raises(RedcapError) as raised:
        await client.export_record("12", ["record_id"])
    await client.aclose()

    assert why in str(raised.value)
    assert "permissions" not in str(raised.value)
    assert TOKEN not in str(raised.value)


async def test_an_unreachable_redcap_is_an_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = client_answering(refuse)
    with pytest.raises(RedcapError, match="could not be reached"):
        await client.export_record("12", ["record_id"])
    await client.aclose()


async def test_an_import_sends_one_record_and_reads_the_count() -> None:
    sent: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(dict(httpx.QueryParams(request.content.decode())))
        return httpx.Response(200, json={"count": 1})

    client = client_answering(handler)
    count = await client.import_record({"record_id": "12", "il6_eligibility": "eligible"})
    await client.aclose()

    assert count == 1
    (form,) = sent
    assert form["action"] == "import"
    assert form["overwriteBehavior"] == "overwrite"
    assert json.loads(form["data"]) == [{"record_id": "12", "il6_eligibility": "eligible"}]


@pytest.mark.parametrize("body", [b'{"error": "x"}', b"[]", b'{"count": true}', b"nope"])
async def test_an_import_answer_without_a_count_is_an_error(body: bytes) -> None:
    client = client_answering(lambda _: httpx.Response(200, content=body))

    with pytest.raises(RedcapError):
        await client.import_record({"record_id": "12"})
    await client.aclose()


# --- settings -------------------------------------------------------------------------------------------


def redcap_settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "redcap_api_url": "https://redcap.example.org/api/",
        "redcap_api_token": SecretStr(TOKEN),
        "redcap_trigger_secret": SecretStr(TRIGGER_SECRET),
        "redcap_project_id": 7,
    }
    return Settings(**{**values, **changes})


def test_the_receiver_is_off_by_default() -> None:
    settings = Settings()

    assert settings.redcap_api_url is None
    assert settings.redcap_write_back is None
    assert settings.redcap_instrument == "il6_result"


def test_the_settings_defaults_and_the_field_map_defaults_agree() -> None:
    assert FieldMap(**RedcapFields().model_dump()) == FieldMap()


@pytest.mark.parametrize("missing", ["redcap_api_token", "redcap_trigger_secret", "redcap_project_id"])
def test_an_api_url_needs_a_token_a_trigger_secret_and_a_project(missing: str) -> None:
    with pytest.raises(ValidationError, match=missing.upper()):
        redcap_settings(**{missing: None})


PRODUCTION = {
    "environment": Environment.PRODUCTION,
    "database_url": SecretStr("postgresql+psycopg://il6:s3cr3t-Xq9@db:5432/il6"),
}


def test_production_needs_a_trigger_secret_of_32_characters_and_errors_never_show_it() -> None:
    short = "s" * 31

    with pytest.raises(ValidationError) as raised:
        redcap_settings(redcap_trigger_secret=SecretStr(short), **PRODUCTION)

    assert "at least 32" in str(raised.value)
    assert short not in str(raised.value)
    assert redcap_settings(redcap_trigger_secret=SecretStr("s" * 32), **PRODUCTION).redcap_trigger_secret
    assert redcap_settings(redcap_trigger_secret=SecretStr("short")).redcap_trigger_secret  # not production


@pytest.mark.parametrize("secret", ["with space", "a+b", "a/b", "a&b=c", " leading", "trailing\n", "é"])
def test_a_trigger_secret_holds_url_safe_characters_only(secret: str) -> None:
    with pytest.raises(ValidationError) as raised:
        redcap_settings(redcap_trigger_secret=SecretStr(secret))

    assert "IL6_REDCAP_TRIGGER_SECRET" in str(raised.value)
    assert secret.strip() not in str(raised.value)


def test_production_sends_the_token_over_https_only_and_errors_never_show_it() -> None:
    with pytest.raises(ValidationError) as raised:
        redcap_settings(
            redcap_api_url="http://redcap.example.org/api/",
            environment=Environment.PRODUCTION,
            database_url=SecretStr("postgresql+psycopg://il6:s3cr3t-Xq9@db:5432/il6"),
        )

    assert "https" in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert "s3cr3t-Xq9" not in str(raised.value)


def test_write_back_may_not_overwrite_an_input() -> None:
    with pytest.raises(ValidationError, match="il6_value"):
        redcap_settings(redcap_write_back={"eligibility": "il6_value"})


@pytest.mark.parametrize("fields", [{"value": "IL6 Value"}, {"valu": "il6_value"}])
def test_the_field_map_takes_known_keys_and_redcap_names_only(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        redcap_settings(redcap_fields=fields)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError):
        redcap_settings(redcap_timezone="Mars/Olympus_Mons")


def test_the_maps_are_read_from_json_and_empty_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IL6_REDCAP_API_URL", "https://redcap.example.org/api/")
    monkeypatch.setenv("IL6_REDCAP_API_TOKEN", TOKEN)
    monkeypatch.setenv("IL6_REDCAP_TRIGGER_SECRET", TRIGGER_SECRET)
    monkeypatch.setenv("IL6_REDCAP_PROJECT_ID", "7")
    monkeypatch.setenv("IL6_REDCAP_FIELDS", '{"value": "lab_il6", "site_id": "redcap_data_access_group"}')
    monkeypatch.setenv("IL6_REDCAP_WRITE_BACK", "{}")
    monkeypatch.setenv("IL6_REDCAP_TIMEZONE", "")

    settings = Settings()

    assert settings.redcap_fields.value == "lab_il6"
    assert settings.redcap_fields.site_id == "redcap_data_access_group"
    assert settings.redcap_fields.unit == "il6_unit"
    assert settings.redcap_write_back is None
    assert settings.redcap_timezone is None
    assert TOKEN not in repr(settings)
    assert TRIGGER_SECRET not in repr(settings)
