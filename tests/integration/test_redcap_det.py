"""REDCap's Data Entry Trigger, end to end against a stand-in REDCap API served over real HTTP on loopback.

The stand-in implements the two API calls the service makes, in the shapes the REDCap API documents: a
form-encoded POST to /api/ with token, content=record, format=json, type=flat, returnFormat=json and
action=export (records[n], fields[n], events[n] -> a JSON array of flat records) or action=import
(overwriteBehavior, data=<JSON array> -> {"count": n}). It checks the token and records every call.
"""

import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select

from app.settings import Environment, RedcapWriteBack, Settings
from app.store.models import Assessment
from tests.factories import assessment_body, subject_id
from tests.integration.conftest import app_client, count_rows

TRIGGER_SECRET = "det-secret-0123456789abcdefghijklmn"
BARE_PATH = "/v1/redcap/data-entry-trigger"
PATH = f"{BARE_PATH}?secret={TRIGGER_SECRET}"
"""The Data Entry Trigger URL as configured in REDCap: it carries the secret."""
PROBLEM = "application/problem+json"
TOKEN = "0123456789ABCDEF0123456789ABCDEF"
PROJECT = 7
INSTRUMENT = "il6_result"
OUTPUTS = RedcapWriteBack(
    eligibility="il6_eligibility",
    risk_group="il6_risk_group",
    assessment_id="il6_assessment_id",
    classifier="il6_classifier",
)
INPUT_FIELDS = [
    "record_id",
    "il6_value",
    "il6_unit",
    "il6_comparator",
    "il6_assay",
    "il6_specimen_type",
    "il6_collected_at",
    "il6_result_complete",
]
PROJECT_FIELDS = [*INPUT_FIELDS, "il6_eligibility", "il6_risk_group", "il6_assessment_id", "il6_classifier"]


def project_record(record: str, **changes: str) -> dict[str, str]:
    """A record of the stand-in project, with every field; the outputs blank until written back."""
    row = dict.fromkeys(PROJECT_FIELDS, "")
    row.update(
        record_id=record,
        il6_value="1.5",
        il6_unit="pg/mL",
        il6_comparator="<",
        il6_assay="elecsys-il6",
        il6_specimen_type="serum",
        il6_collected_at="2026-11-20T09:30:00Z",
        il6_result_complete="2",
    )
    row.update(changes)
    return row


@dataclass
class StandInRedcap:
    """One REDCap project's API: its records by (record, event), and every call made to it."""

    longitudinal: bool = False
    records: dict[tuple[str, str | None], dict[str, str]] = field(default_factory=dict)
    calls: list[dict[str, str]] = field(default_factory=list)
    exported: list[bytes] = field(default_factory=list)
    imported: list[list[dict[str, str]]] = field(default_factory=list)
    failing: bool = False
    refusing_imports: bool = False
    after_export: Callable[[], None] | None = None
    """Run once, after the next export is answered: a save in REDCap while the service decides."""
    export_delay_s: float = 0.0
    url: str = ""

    def add(self, row: dict[str, str], event: str | None = None) -> None:
        self.records[(row["record_id"], event)] = row

    def row(self, record: str, event: str | None = None) -> dict[str, str]:
        return self.records[(record, event)]

    def answer(self, form: dict[str, str]) -> tuple[int, Any]:
        if self.failing:
            return 500, {"error": "The server encountered an error processing your request."}
        if form.get("token") != TOKEN:
            return 403, {"error": "You do not have permissions to use the API"}
        expected = {"content": "record", "format": "json", "type": "flat", "returnFormat": "json"}
        if any(form.get(name) != value for name, value in expected.items()):
            return 400, {"error": "The parameters are not the ones this stand-in implements."}
        if form.get("action") == "export":
            time.sleep(self.export_delay_s)
            answer = self.export(form)
            if self.after_export is not None:
                change, self.after_export = self.after_export, None
                change()
            return answer
        if form.get("action") == "import":
            return self.import_(form)
        return 400, {"error": "Unknown action."}

    def export(self, form: dict[str, str]) -> tuple[int, Any]:
        records = [value for name, value in form.items() if name.startswith("records[")]
        fields = [value for name, value in form.items() if name.startswith("fields[")]
        events = [value for name, value in form.items() if name.startswith("events[")]
        if unknown := [name for name in fields if name not in PROJECT_FIELDS]:
            return 400, {"error": f'The following values in the parameter "fields" are not valid: {unknown}'}
        rows = []
        for (record, event), stored in self.records.items():
            if (records and record not in records) or (events and event not in events):
                continue
            row = {"record_id": stored["record_id"]}
            if self.longitudinal:
                row["redcap_event_name"] = event or ""
                row["redcap_repeat_instrument"] = ""
                row["redcap_repeat_instance"] = ""
            row.update({name: stored[name] for name in (fields or PROJECT_FIELDS)})
            rows.append(row)
        return 200, rows

    def import_(self, form: dict[str, str]) -> tuple[int, Any]:
        if self.refusing_imports:
            return 400, {"error": "il6_risk_group: the value you provided could not be validated"}
        if form.get("overwriteBehavior") not in {"normal", "overwrite"}:
            return 400, {"error": "overwriteBehavior is not valid"}
        rows: list[dict[str, str]] = json.loads(form["data"])
        for row in rows:
            key = (row["record_id"], row.get("redcap_event_name"))
            if key not in self.records or any(
                name not in [*PROJECT_FIELDS, "redcap_event_name"] for name in row
            ):
                return 400, {"error": "The record or a field does not exist."}
        for row in rows:
            stored = self.records[(row["record_id"], row.get("redcap_event_name"))]
            for name, value in row.items():
                if name in PROJECT_FIELDS and (value != "" or form["overwriteBehavior"] == "overwrite"):
                    stored[name] = value
        self.imported.append(rows)
        return 200, {"count": len(rows)}


def handler_for(stand_in: StandInRedcap) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length).decode("ascii")
            form = dict(parse_qsl(body, keep_blank_values=True, strict_parsing=True))
            if self.path != "/api/" or self.headers.get_content_type() != "application/x-www-form-urlencoded":
                status, answer = 404, {"error": "The URI you requested is invalid."}
            else:
                stand_in.calls.append(form)
                status, answer = stand_in.answer(form)
            payload = json.dumps(answer, separators=(",", ":")).encode()
            if status == 200 and form.get("action") == "export":
                stand_in.exported.append(payload)
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving(stand_in: StandInRedcap) -> Iterator[StandInRedcap]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(stand_in))
    thread = threading.Thread(target=server.serve_forever, name="stand-in-redcap", daemon=True)
    thread.start()
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def redcap() -> Iterator[StandInRedcap]:
    with serving(StandInRedcap()) as stand_in:
        yield stand_in


def settings_for(database_url: str, api_url: str | None, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": SecretStr(database_url),
        "environment": Environment.TEST,
        "redcap_api_url": api_url,
        "redcap_api_token": SecretStr(TOKEN),
        "redcap_trigger_secret": SecretStr(TRIGGER_SECRET),
        "redcap_project_id": PROJECT,
        "redcap_instrument": INSTRUMENT,
        "redcap_write_back": OUTPUTS,
        "redcap_timeout_s": 2.0,
    }
    return Settings(**{**values, **changes})


@asynccontextmanager
async def service(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    clients = app_client(settings)
    client = await anext(clients)
    try:
        yield client
    finally:
        await anext(clients, None)  # runs the lifespan's shutdown


@pytest.fixture
async def receiver(database_url: str, redcap: StandInRedcap) -> AsyncIterator[httpx.AsyncClient]:
    async with service(settings_for(database_url, redcap.url)) as client:
        yield client


def trigger(
    record: str,
    *,
    project: int = PROJECT,
    instrument: str = INSTRUMENT,
    complete: str = "2",
    event: str | None = None,
) -> dict[str, str]:
    """The form REDCap posts when a record is saved."""
    form = {
        "redcap_url": "https://redcap.example.org/",
        "project_url": f"https://redcap.example.org/redcap_v14.0.0/index.php?pid={project}",
        "project_id": str(project),
        "username": "coordinator",
        "record": record,
        "instrument": instrument,
        f"{instrument}_complete": complete,
    }
    if event is not None:
        form["redcap_event_name"] = event
    return form


def stored_row(db: Engine, assessment_id: str) -> dict[str, Any]:
    with db.connect() as connection:
        row = connection.execute(
            select(Assessment.__table__).where(Assessment.id == uuid.UUID(assessment_id))
        ).one()
    values = row._asdict()
    for name in ("input", "decision"):
        if isinstance(values[name], str):
            values[name] = json.loads(values[name])
    return values


def service_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the service logged: caplog.text without the test client's own lines (httpx logs each URL the
    client asks for, as REDCap's web server would; the trigger URL carries the secret by design)."""
    return "\n".join(
        caplog.handler.format(record)
        for record in caplog.records
        if not (record.name == "httpx" and "http://testserver/" in record.getMessage())
    )


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["type"] == f"/problems/{slug}"
    return problem


# --- a complete trigger ---------------------------------------------------------------------------------


async def test_a_complete_trigger_decides_records_and_writes_back(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))

    response = await receiver.post(PATH, data=trigger(subject), headers={"X-Request-ID": "det-1"})

    assert response.status_code == 202, response.text
    answer = response.json()
    # What was done, not what was decided: REDCap ignores the answer, and nobody else needs it.
    assert answer == {"outcome": "decided", "assessment_id": answer["assessment_id"], "written_back": True}
    assert response.headers["location"] == f"/v1/assessments/{answer['assessment_id']}"

    # Read through the API with the service's token, asking for the inputs and the status only; read
    # again, unchanged, just before writing back.
    assert [call["action"] for call in redcap.calls] == ["export", "export", "import"]
    export = redcap.calls[0]
    assert export["records[0]"] == subject
    assert sorted(value for name, value in export.items() if name.startswith("fields[")) == sorted(
        INPUT_FIELDS
    )
    assert redcap.calls[1] == export

    # One audit record: the export exactly as REDCap sent it, named as such, with REDCap as the caller.
    assert count_rows(db, subject) == 1
    row = stored_row(db, answer["assessment_id"])
    assert row["request_media_type"] == "application/vnd.redcap.record+json"
    assert row["request_body"].encode() == redcap.exported[0]
    assert row["client_id"] == f"redcap:{PROJECT}"
    assert row["request_id"] == "det-1"
    assert row["idempotency_key"].startswith("redcap-")
    assert row["input"]["reference"] == f"redcap:{PROJECT}/{subject}/-/{INSTRUMENT}"
    assert row["input"]["il6"] == {"value": "1.5", "unit": "pg/mL", "comparator": "<", "assay": "elecsys-il6"}
    assert row["decision"]["eligibility"]["status"] == "eligible"

    # The decision is written into the record's output fields, and only those.
    assert redcap.imported == [
        [
            {
                "record_id": subject,
                "il6_eligibility": "eligible",
                "il6_risk_group": "low",
                "il6_assessment_id": answer["assessment_id"],
                "il6_classifier": "il6-enrichment@1.0.0",
            }
        ]
    ]
    assert redcap.row(subject)["il6_assessment_id"] == answer["assessment_id"]
    assert redcap.row(subject)["il6_value"] == "1.5"


async def test_the_same_trigger_for_unchanged_data_records_one_decision(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject, il6_value="30", il6_comparator=""))

    first = await receiver.post(PATH, data=trigger(subject))
    again = await receiver.post(PATH, data=trigger(subject))

    assert first.status_code == 202, first.text
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    assert redcap.row(subject)["il6_eligibility"] == "ineligible"
    assert redcap.row(subject)["il6_risk_group"] == "high"
    assert count_rows(db, subject) == 1
    # The first write-back changed the record's outputs; the decision's inputs, and so its key, did not.
    assert len(redcap.imported) == 2


async def test_changed_data_is_a_new_decision(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))
    first = await receiver.post(PATH, data=trigger(subject))

    redcap.row(subject).update(il6_value="25", il6_comparator="")
    second = await receiver.post(PATH, data=trigger(subject))

    assert first.status_code == second.status_code == 202
    assert second.json()["assessment_id"] != first.json()["assessment_id"]
    assert redcap.row(subject)["il6_eligibility"] == "ineligible"
    assert count_rows(db, subject) == 2
    assert redcap.row(subject)["il6_assessment_id"] == second.json()["assessment_id"]


async def test_the_decision_equals_the_plain_json_decision(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject, il6_value="17.85", il6_comparator="", il6_unit="ng/L"))
    body = assessment_body(subject=subject, value=17.85, comparator=None, unit="ng/L", site_id=None)

    via_redcap = await receiver.post(PATH, data=trigger(subject))
    plain = await receiver.post("/v1/assessments", json=body)

    assert (via_redcap.status_code, plain.status_code) == (202, 201)
    recorded = (await receiver.get(via_redcap.headers["location"])).json()
    direct = plain.json()
    for part in ("subject_id", "site_id", "specimen", "eligibility", "risk", "il6", "classifier"):
        assert recorded[part] == direct[part], part
    assert recorded["risk"]["group"] == "high"  # exactly at the cutoff
    redcap_input = stored_row(db, recorded["id"])["input"]
    plain_input = stored_row(db, direct["id"])["input"]
    assert redcap_input.pop("reference").startswith("redcap:")
    assert redcap_input == plain_input


async def test_a_longitudinal_record_is_read_and_written_at_its_event(database_url: str, db: Engine) -> None:
    subject = subject_id("RC")
    with serving(StandInRedcap(longitudinal=True)) as redcap:
        redcap.add(project_record(subject, il6_value="40", il6_comparator=""), event="screening_arm_1")
        redcap.add(project_record(subject), event="baseline_arm_1")
        async with service(settings_for(database_url, redcap.url)) as client:
            response = await client.post(PATH, data=trigger(subject, event="baseline_arm_1"))

    assert response.status_code == 202, response.text
    assert redcap.row(subject, "baseline_arm_1")["il6_eligibility"] == "eligible"  # not the screening one
    assert redcap.calls[0]["events[0]"] == "baseline_arm_1"
    row = stored_row(db, response.json()["assessment_id"])
    assert row["input"]["reference"] == f"redcap:{PROJECT}/{subject}/baseline_arm_1/{INSTRUMENT}"
    (written,) = redcap.imported[0]
    assert written["redcap_event_name"] == "baseline_arm_1"
    assert redcap.row(subject, "baseline_arm_1")["il6_eligibility"] == "eligible"
    assert redcap.row(subject, "screening_arm_1")["il6_eligibility"] == ""


async def test_without_write_back_nothing_is_written(
    database_url: str, redcap: StandInRedcap, db: Engine
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))

    async with service(settings_for(database_url, redcap.url, redcap_write_back=None)) as client:
        response = await client.post(PATH, data=trigger(subject))

    assert response.status_code == 202, response.text
    assert response.json() == {
        "outcome": "decided",
        "assessment_id": response.json()["assessment_id"],
        "written_back": False,
    }
    assert [call["action"] for call in redcap.calls] == ["export"]
    assert count_rows(db, subject) == 1


async def test_a_refused_write_back_keeps_the_decision_and_a_new_trigger_repairs_it(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))
    redcap.refusing_imports = True

    refused = await receiver.post(PATH, data=trigger(subject))
    redcap.refusing_imports = False
    repaired = await receiver.post(PATH, data=trigger(subject))

    assert refused.status_code == 202, refused.text
    assert refused.json()["written_back"] is False
    assert repaired.json() == {**refused.json(), "written_back": True}
    assert count_rows(db, subject) == 1
    assert redcap.row(subject)["il6_assessment_id"] == refused.json()["assessment_id"]


# --- triggers that ask for nothing, or are refused ------------------------------------------------------


IGNORED = {"outcome": "ignored", "assessment_id": None, "written_back": False}
"""Every ignored trigger gets the same answer: it says nothing of why, nor whether the record exists."""


@pytest.mark.parametrize("complete", ["0", "1", ""])
async def test_an_incomplete_instrument_is_ignored(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine, complete: str
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))

    response = await receiver.post(PATH, data=trigger(subject, complete=complete))

    assert response.status_code == 202, response.text
    assert response.json() == IGNORED
    assert redcap.calls == []
    assert count_rows(db, subject) == 0


async def test_another_instrument_is_ignored(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))

    response = await receiver.post(PATH, data=trigger(subject, instrument="demographics"))

    assert response.status_code == 202, response.text
    assert response.json() == IGNORED
    assert redcap.calls == []


async def test_a_trigger_redcap_contradicts_is_ignored(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine
) -> None:
    # The notice says Complete; the record, read from REDCap, says Unverified: REDCap is the authority.
    subject = subject_id("RC")
    redcap.add(project_record(subject, il6_result_complete="1"))

    response = await receiver.post(PATH, data=trigger(subject))

    assert response.status_code == 202, response.text
    assert response.json() == IGNORED
    assert count_rows(db, subject) == 0
    assert redcap.imported == []


async def test_another_project_is_refused_without_reading_anything(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))

    response = await receiver.post(PATH, data=trigger(subject, project=PROJECT + 1))

    assert_problem(response, 403, "source-not-accepted")
    assert redcap.calls == []
    assert count_rows(db, subject) == 0


async def test_the_receiver_is_off_without_an_api_url(client: httpx.AsyncClient) -> None:
    response = await client.post(PATH, data=trigger("12"))

    assert_problem(response, 404, "not-found")


# --- REDCap unavailable, records that cannot be decided -------------------------------------------------


async def test_redcap_unreachable_is_502_and_nothing_is_decided(database_url: str, db: Engine) -> None:
    subject = subject_id("RC")
    nobody = f"http://127.0.0.1:{free_port()}/api/"

    async with service(settings_for(database_url, nobody)) as client:
        response = await client.post(PATH, data=trigger(subject))

    problem = assert_problem(response, 502, "upstream-unavailable")
    assert "could not be reached" in problem["detail"]
    assert count_rows(db, subject) == 0


@pytest.mark.parametrize("fault", ["failing", "token"])
async def test_redcap_erroring_is_502_and_nothing_is_decided(
    database_url: str, redcap: StandInRedcap, db: Engine, fault: str
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))
    redcap.failing = fault == "failing"
    token = SecretStr("F" * 32 if fault == "token" else TOKEN)

    async with service(settings_for(database_url, redcap.url, redcap_api_token=token)) as client:
        response = await client.post(PATH, data=trigger(subject))

    problem = assert_problem(response, 502, "upstream-unavailable")
    assert "permissions" not in problem["detail"]
    assert "server encountered" not in problem["detail"]
    assert count_rows(db, subject) == 0
    assert redcap.imported == []


async def test_a_record_missing_its_il6_value_is_422_and_nothing_is_written(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject, il6_value=""))

    response = await receiver.post(PATH, data=trigger(subject))

    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"] == [
        {"pointer": "/il6_value", "detail": "Field required: it is blank in REDCap."}
    ]
    assert count_rows(db, subject) == 0
    assert redcap.imported == []


async def test_an_unknown_assay_is_422_at_the_redcap_field(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine
) -> None:
    # Refused by the classifier's rules, after the form checks: the pointer is still the REDCap field's.
    subject = subject_id("RC")
    redcap.add(project_record(subject, il6_assay="homebrew-elisa"))

    response = await receiver.post(PATH, data=trigger(subject))

    problem = assert_problem(response, 422, "validation-error")
    assert [error["pointer"] for error in problem["errors"]] == ["/il6_assay"]
    assert "homebrew" not in response.text
    assert count_rows(db, subject) == 0
    assert redcap.imported == []


async def test_a_record_redcap_does_not_have_is_answered_as_an_ignored_trigger(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))
    missing = subject_id("RC")

    absent = await receiver.post(PATH, data=trigger(missing))
    incomplete = await receiver.post(PATH, data=trigger(subject, complete="0"))

    assert absent.status_code == incomplete.status_code == 202
    assert absent.json() == incomplete.json() == IGNORED
    assert absent.headers.keys() - {"x-request-id"} == incomplete.headers.keys() - {"x-request-id"}
    assert count_rows(db, missing) == 0
    assert redcap.imported == []


# --- the notice itself ----------------------------------------------------------------------------------


async def test_a_trigger_must_be_form_encoded(receiver: httpx.AsyncClient, redcap: StandInRedcap) -> None:
    response = await receiver.post(PATH, json=trigger("12"))

    assert_problem(response, 415, "unsupported-media-type")
    assert redcap.calls == []


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b"project_id=7&instrument=il6_result&il6_result_complete=2", "/record"),
        (b"project_id=7&record=12&record=13&instrument=il6_result", ""),
        (b"project_id=7&record=%FF&instrument=il6_result", ""),
        (
            b"project_id=7&record=12&instrument=il6_result&redcap_repeat_instance=2&il6_result_complete=2",
            None,
        ),
    ],
    ids=["no-record", "record-twice", "not-utf8", "repeating"],
)
async def test_a_malformed_trigger_is_422(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, body: bytes, pointer: str | None
) -> None:
    response = await receiver.post(
        PATH, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )

    problem = assert_problem(response, 422, "validation-error")
    expected = "/redcap_repeat_instance" if pointer is None else pointer
    assert [error["pointer"] for error in problem["errors"]] == [expected]
    assert redcap.calls == []


async def test_nothing_of_the_record_or_the_token_is_logged(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, caplog: pytest.LogCaptureFixture
) -> None:
    subject = subject_id("SECRETSUBJECT")
    redcap.add(project_record(subject, il6_value="0.987", il6_comparator=""))
    other = subject_id("SECRETSUBJECT")
    redcap.add(project_record(other, il6_value="0.654", il6_unit="mg/dL"))
    caplog.set_level(logging.DEBUG)

    decided = await receiver.post(PATH, data=trigger(subject))
    refused = await receiver.post(PATH, data=trigger(other))
    redcap.refusing_imports = True
    unwritten = await receiver.post(PATH, data=trigger(subject))

    assert (decided.status_code, refused.status_code, unwritten.status_code) == (202, 422, 202)
    assert caplog.records, "the requests were logged"
    secrets = (TOKEN, TRIGGER_SECRET, "SECRETSUBJECT", "0.987", "0.654", "mg/dL", "could not be validated")
    logged = service_log(caplog)
    for secret in secrets:
        assert secret not in logged


# --- the trigger secret ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        BARE_PATH,
        f"{BARE_PATH}?secret=",
        f"{BARE_PATH}?secret={TRIGGER_SECRET[:-1]}",
        f"{BARE_PATH}?secret={TRIGGER_SECRET}x",
        f"{BARE_PATH}?secret={TRIGGER_SECRET.upper()}",
        f"{BARE_PATH}?Secret={TRIGGER_SECRET}",
        f"{BARE_PATH}?secret=wrong&secret={TRIGGER_SECRET}",
        f"{BARE_PATH}?secret={TRIGGER_SECRET}&secret={TRIGGER_SECRET}",
    ],
    ids=["none", "empty", "short", "long", "case", "name-case", "wrong-then-right", "twice"],
)
async def test_a_trigger_without_the_secret_is_401_and_nothing_is_read(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine, path: str
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))

    response = await receiver.post(path, data=trigger(subject))

    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert "www-authenticate" in response.headers
    assert response.json()["title"] == "Unauthorized"
    assert TRIGGER_SECRET not in response.text
    assert redcap.calls == []
    assert count_rows(db, subject) == 0


async def test_the_secret_is_checked_before_the_body_is_read(
    receiver: httpx.AsyncClient, redcap: StandInRedcap
) -> None:
    # A body that would be 415, and one that would be 422: without the secret, neither is looked at.
    as_json = await receiver.post(BARE_PATH, json=trigger("12"))
    malformed = await receiver.post(
        BARE_PATH,
        content=b"record=12&record=13",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert as_json.status_code == malformed.status_code == 401
    assert redcap.calls == []


async def test_the_secret_is_never_logged(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, caplog: pytest.LogCaptureFixture
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))
    caplog.set_level(logging.DEBUG)

    right = await receiver.post(PATH, data=trigger(subject))
    wrong = await receiver.post(f"{BARE_PATH}?secret={TRIGGER_SECRET}-wrong", data=trigger(subject))

    assert (right.status_code, wrong.status_code) == (202, 401)
    assert "data-entry-trigger" in service_log(caplog)  # the service's own request lines are there
    assert TRIGGER_SECRET not in service_log(caplog)


# --- a record saved again while it is decided -----------------------------------------------------------


async def test_a_record_changed_before_the_write_back_is_not_written_over(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Save A fires a trigger; save B lands while A is decided: A's decision must not sit next to B's
    inputs. B's own trigger then writes B's decision."""
    subject = subject_id("RC")
    redcap.add(project_record(subject))  # version A: < 1.5 pg/mL, eligible
    redcap.after_export = lambda: redcap.row(subject).update(il6_value="30", il6_comparator="")  # version B
    caplog.set_level(logging.INFO)

    for_a = await receiver.post(PATH, data=trigger(subject))

    assert for_a.status_code == 202, for_a.text
    assert for_a.json()["outcome"] == "decided"
    assert for_a.json()["written_back"] is False
    assert redcap.imported == []
    assert redcap.row(subject)["il6_eligibility"] == ""
    assert "skipped: the record changed after it was read" in caplog.text
    assert subject not in caplog.text

    for_b = await receiver.post(PATH, data=trigger(subject))

    assert for_b.json()["written_back"] is True
    assert for_b.json()["assessment_id"] != for_a.json()["assessment_id"]
    assert redcap.row(subject)["il6_eligibility"] == "ineligible"
    assert redcap.row(subject)["il6_assessment_id"] == for_b.json()["assessment_id"]
    assert count_rows(db, subject) == 2  # both decisions stand in the audit trail


async def test_a_record_that_cannot_be_read_again_is_not_written(
    receiver: httpx.AsyncClient, redcap: StandInRedcap, db: Engine
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))

    def fail() -> None:
        redcap.failing = True

    redcap.after_export = fail

    response = await receiver.post(PATH, data=trigger(subject))

    assert response.status_code == 202, response.text
    assert response.json()["written_back"] is False
    assert redcap.imported == []
    assert count_rows(db, subject) == 1


async def test_triggers_for_one_record_are_taken_one_at_a_time(
    receiver: httpx.AsyncClient, redcap: StandInRedcap
) -> None:
    subject = subject_id("RC")
    redcap.add(project_record(subject))
    redcap.export_delay_s = 0.1  # long enough for the second trigger to arrive mid-way

    first, second = await asyncio.gather(
        receiver.post(PATH, data=trigger(subject)), receiver.post(PATH, data=trigger(subject))
    )

    assert first.status_code == second.status_code == 202
    # Each trigger's export, re-export and import, never interleaved with the other's.
    assert [call["action"] for call in redcap.calls] == ["export", "export", "import"] * 2
