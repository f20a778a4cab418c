"""The log canary can fail, and it is listening: a marked subject id or a key in a record is reported,
a clean line is not, and the session's collector receives what the app's loggers emit."""

import logging
import re
import secrets
import sys
from pathlib import Path

import pytest

from app.api.schemas.common import IDENTIFIER_PATTERN
from app.domain.access import issue_key
from tests import log_canary
from tests.factories import subject_id
from tests.log_canary import LogCollector


def record(
    message: str, *args: object, name: str = "app.requests", exc_info: bool = False
) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(
        name, logging.INFO, __file__, 1, message, args, sys.exc_info() if exc_info else None
    )


def fed(*records: logging.LogRecord) -> LogCollector:
    """A collector of its own (never the session's), given ``records`` directly (never through logging)."""
    collector = LogCollector()
    for item in records:
        collector.handle(item)
    return collector


def test_factory_subject_ids_are_marked_valid_and_unique() -> None:
    made = [subject_id(), subject_id("SECRETSUBJECT"), subject_id("ehr")]

    assert [made_id.split("-")[:2] for made_id in made] == [
        ["T", log_canary.MARKER],
        ["SECRETSUBJECT", log_canary.MARKER],
        ["ehr", log_canary.MARKER],
    ]
    assert all(re.fullmatch(IDENTIFIER_PATTERN, made_id) for made_id in made)
    assert len(set(made + [subject_id() for _ in range(1000)])) == 1003


def test_a_marked_subject_id_in_a_record_is_reported() -> None:
    subject = subject_id()

    collector = fed(record("GET /v1/subjects/%s/assessments 200", subject))

    [finding] = collector.findings()
    assert finding.found == ("subject-id marker",)
    assert subject in finding.line
    assert finding.source == "log app.requests"


def test_a_marked_subject_id_is_found_in_any_case() -> None:
    collector = fed(record("subject %s", subject_id().lower()))

    assert [finding.found for finding in collector.findings()] == [("subject-id marker",)]


def test_an_api_key_in_a_record_is_reported_and_masked_in_the_report() -> None:
    key = issue_key().secret

    collector = fed(record("authentication refused: bad key %s", key, name="app.access"))

    [finding] = collector.findings()
    assert finding.found == ("API key",)
    [line] = log_canary.report(collector.findings())
    assert "API key in log app.access" in line
    assert key not in line  # the report does not repeat the secret


def test_a_marked_id_in_an_exception_traceback_is_reported() -> None:
    subject = subject_id()
    try:
        raise ValueError(f"no such subject {subject}")
    except ValueError:
        logged = record("unexpected error", exc_info=True)

    # The traceback names this file and function (test_log_canary...): the bare word is not a finding.
    [finding] = fed(logged).findings()
    assert finding.line == f"ValueError: no such subject {subject}"


def test_clean_lines_pass() -> None:
    collector = fed(
        record("POST /v1/assessments 201 12.3ms request_id=%s caller=tests-1", secrets.token_hex(16)),
        record("authentication refused: malformed request_id=req-1", name="app.access"),
        record("audit checkpoint %s", '{"seq": 3, "hash": "ab12"}', name="app.service.audit"),
    )

    assert collector.records == 3
    assert collector.findings() == []


def test_records_below_info_are_not_read() -> None:
    collector = LogCollector()
    private = logging.getLogger(f"log-probe-{secrets.token_hex(4)}")
    private.propagate = False  # never to the session's collector
    private.setLevel(logging.DEBUG)
    private.addHandler(collector)
    try:
        private.debug("subject %s", subject_id())
        private.info("a clean line")
    finally:
        private.removeHandler(collector)

    assert collector.records == 1
    assert collector.findings() == []


def test_server_output_is_read(tmp_path: Path) -> None:
    subject, key = subject_id(), issue_key().secret
    stdout, stderr = tmp_path / "server.stdout.log", tmp_path / "server.stderr.log"
    stdout.write_text("INFO:     Started server process [1]\n", encoding="utf-8")
    stderr.write_text(f"INFO app.requests GET /x 200\nERROR app bad {subject}\nWARNING app.access {key}\n")

    collector = LogCollector()
    collector.add_server_output(stdout, stderr, "http://127.0.0.1:8123")

    assert [finding.found for finding in collector.findings()] == [("subject-id marker",), ("API key",)]
    assert all(finding.source == f"server stderr {stderr}" for finding in collector.findings())
    assert (collector.servers, collector.server_lines) == (1, 4)


def test_a_test_clients_own_request_line_is_not_the_services_log(tmp_path: Path) -> None:
    """httpx logs every URL a client asks for: the tests' requests to the service under test are theirs,
    but a line the app's own outbound client logs (to REDCap, say) still counts."""
    subject = subject_id()
    line = 'HTTP Request: GET %s/v1/subjects/%s/assessments "HTTP/1.1 200 OK"'
    collector = fed(
        record(line, "http://testserver", subject, name="httpx"),
        record(line, "http://127.0.0.1:8123", subject, name="httpx"),
        record(line, "http://127.0.0.1:9999", subject, name="httpx"),  # not a service the tests started
        record(line, "http://testserver", subject, name="app.requests"),  # not httpx: the app's own line
    )
    empty = tmp_path / "empty.log"
    empty.touch()
    collector.add_server_output(empty, empty, "http://127.0.0.1:8123")

    assert [finding.source for finding in collector.findings()] == ["log httpx", "log app.requests"]
    assert "127.0.0.1:9999" in collector.findings()[0].line


def test_the_report_is_truncated() -> None:
    collector = fed(*(record("%s %s", subject_id(), "x" * 1000) for _ in range(log_canary.MAX_REPORTED + 5)))

    lines = list(log_canary.report(collector.findings()))

    assert len(lines) == log_canary.MAX_REPORTED + 1
    assert lines[-1] == "... and 5 more"
    assert all(len(line) < log_canary.MAX_LINE + 80 for line in lines)


def test_the_session_collector_is_installed_and_receives_app_records() -> None:
    nonce = f"collector-self-test-{secrets.token_hex(8)}"
    before = log_canary.COLLECTOR.records

    logging.getLogger("app.requests").info("GET /healthz 200 0.1ms request_id=%s caller=-", nonce)

    assert log_canary.installed()
    assert log_canary.bypassed(["app", "app.requests", "app.access"]) == []
    assert log_canary.COLLECTOR.records > before
    assert log_canary.COLLECTOR.saw(nonce)


def test_a_logger_that_would_bypass_the_collector_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    logger = logging.getLogger("app.bypass-probe")
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "disabled", True)

    assert log_canary.bypassed([logger.name]) == [
        "logger app.bypass-probe is disabled",
        "logger app.bypass-probe does not propagate",
    ]
