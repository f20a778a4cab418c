"""Shared test settings: where the real PostgreSQL server is, a private home for the signing key, and the
log canary over the whole session."""

import io
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.logs import build_handler
from tests import log_canary

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# Apps built in-process by the tests sign checkpoints with a key of their own, never one under ./var.
_STATE = Path(tempfile.mkdtemp(prefix="il6-tests-"))
os.environ["IL6_SIGNING_KEY_FILE"] = str(_STATE / "audit-signing-key.pem")
os.environ["IL6_CHECKPOINT_FILE"] = str(_STATE / "audit-checkpoints.jsonl")

_CANARY = pytest.StashKey[tuple[list[log_canary.Finding], list[str]]]()


# The log canary (tests/log_canary.py): every log record of the session, and the output of every server
# process the e2e tests start, is searched for marked subject ids and API keys once the tests are done.


def pytest_sessionstart(session: pytest.Session) -> None:
    log_canary.install()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    problems = log_canary.bypassed()
    log_canary.uninstall()
    findings = log_canary.COLLECTOR.findings()
    session.config.stash[_CANARY] = (findings, problems)
    if (findings or problems) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    findings, problems = config.stash.get(_CANARY, ([], []))
    collector = log_canary.COLLECTOR
    scanned = (
        f"{collector.records} log records, {collector.server_lines} lines of output "
        f"of {collector.servers} server processes"
    )
    if not findings and not problems:
        terminalreporter.write_line(f"log canary: nothing found in {scanned}")
        return
    terminalreporter.section("log canary", sep="=", red=True, bold=True)
    terminalreporter.write_line(
        f"application logs gave away subject ids or API keys, so the session fails "
        f"({len(findings)} lines, in {scanned}):"
    )
    for line in log_canary.report(findings):
        terminalreporter.write_line(f"  {line}", red=True)
    for problem in problems:
        terminalreporter.write_line(f"  log records could bypass the canary: {problem}", red=True)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the application's loggers write during the test, as the service's JSON handler on the root
    logger writes it."""
    stream = io.StringIO()
    handler = build_handler("json", stream)
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)
