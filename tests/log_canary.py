"""The log canary: nothing clinical and no credential reaches the application's logs, across the whole suite.

The test factories mark every subject id they make with ``MARKER`` (``T-CANARY-...``). For the whole session
a handler on the root logger reads every log record the test process emits at INFO and above (with its
exception text), and the e2e tests hand over the stdout and stderr of every server process they started.
At the end of the session all of it is searched for the marker and for anything shaped as an API key
(``app.domain.access.API_KEY``); a single hit fails the session, with the offending lines.

Only log records and server output are application logs. What pytest prints (assertion messages, a test's
own stdout) is not read. Neither are the test client's own request lines: httpx logs every URL it asks for
at INFO, so a test's ``GET /v1/subjects/<id>/...`` to the service under test is the client's record, not
the service's (a line the app's own outbound clients log, to REDCap or an OIDC issuer, is still read).
"""

import logging
import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app.domain.access import API_KEY

MARKER = "CANARY"
"""Every subject id the test factories make holds ``-CANARY-`` (``<prefix>-CANARY-<12 hex>``)."""
_MARKER = re.compile(re.escape(MARKER) + "-[A-Za-z0-9]", re.IGNORECASE)
"""The start of a marked id, in either case (an id upper- or lower-cased on its way is found too); not the
bare word, which a traceback can hold in a file or function name (this file's, test_log_canary.py's)."""

LEVEL = logging.INFO
"""The service logs at INFO by default (IL6_LOG_LEVEL); what it logs there is what an operator keeps."""
FORMAT = "%(levelname)s %(name)s %(message)s"

TEST_CLIENT_ORIGINS = frozenset({"http://testserver", "http://test"})
"""The base URLs of the in-process test clients (httpx over ASGITransport)."""
_CLIENT_REQUEST_LINE = re.compile(r'^HTTP Request: [A-Z]+ (?P<url>\S+) "')

MAX_REPORTED = 40
MAX_LINE = 240
RECENT = 2000


@dataclass(frozen=True)
class Finding:
    """One offending line: where it came from and what was found in it."""

    source: str
    """``log <logger name>``, or ``server <stdout|stderr> <file>``."""
    line: str
    found: tuple[str, ...]
    logger: str | None = None


def scan(text: str) -> tuple[str, ...]:
    """What ``text`` gives away: ``subject-id marker``, ``API key`` (either, both or neither)."""
    found = []
    if _MARKER.search(text):
        found.append("subject-id marker")
    if API_KEY.search(text):
        found.append("API key")
    return tuple(found)


def findings_in(source: str, text: str, logger: str | None = None) -> list[Finding]:
    """A finding for every line of ``text`` that gives something away."""
    return [Finding(source, line, found, logger) for line in text.splitlines() if (found := scan(line))]


def _masked(line: str) -> str:
    """The line as the report shows it: a key's secret part is not repeated in the test output."""
    return API_KEY.sub(lambda match: match.group(0)[:25] + "...", line)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class LogCollector(logging.Handler):
    """Reads every record it is given and every server output registered with it; keeps what gives
    something away, and the last few lines (for the check that it is installed and fed)."""

    def __init__(self, level: int = LEVEL) -> None:
        super().__init__(level)
        self.setFormatter(logging.Formatter(FORMAT))
        self.records = 0
        self.server_lines = 0
        self.servers = 0
        self.recent: deque[str] = deque(maxlen=RECENT)
        self._findings: list[Finding] = []
        self._service_origins: set[str] = set(TEST_CLIENT_ORIGINS)
        self._guard = threading.Lock()  # records come from any thread; server output from the tests'

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)  # the message, then the exception's traceback and any stack
        except Exception:  # a record that cannot be formatted is logging's problem, reported as usual
            self.handleError(record)
            return
        with self._guard:
            self.records += 1
            self.recent.append(text)
            self._findings += findings_in(f"log {record.name}", text, record.name)

    def add_server_output(self, stdout: Path, stderr: Path, base_url: str | None = None) -> None:
        """A stopped server's output files; ``base_url``: where the tests reached it (their clients'
        request lines to it are theirs, not the service's)."""
        with self._guard:
            if base_url is not None:
                self._service_origins.add(_origin(base_url))
            self.servers += 1
            for name, path in (("stdout", stdout), ("stderr", stderr)):
                try:
                    text = path.read_text(encoding="utf-8", errors="replace")
                except FileNotFoundError:
                    continue
                self.server_lines += len(text.splitlines())
                self._findings += findings_in(f"server {name} {path}", text)

    def findings(self) -> list[Finding]:
        """Everything that gave something away, but a test client's own request lines to the service."""
        with self._guard:
            return [finding for finding in self._findings if not self._test_client_line(finding)]

    def _test_client_line(self, finding: Finding) -> bool:
        if finding.logger != "httpx":
            return False
        match = _CLIENT_REQUEST_LINE.match(finding.line.removeprefix("INFO httpx "))
        return match is not None and _origin(match.group("url")) in self._service_origins

    def saw(self, text: str) -> bool:
        """Whether a recent record contained ``text``."""
        with self._guard:
            return any(text in line for line in self.recent)


def report(findings: list[Finding]) -> Iterator[str]:
    """The report lines for ``findings``: each line truncated, keys masked, at most MAX_REPORTED shown."""
    for finding in findings[:MAX_REPORTED]:
        line = _masked(finding.line)
        if len(line) > MAX_LINE:
            line = line[:MAX_LINE] + "..."
        yield f"{', '.join(finding.found)} in {finding.source}: {line}"
    if len(findings) > MAX_REPORTED:
        yield f"... and {len(findings) - MAX_REPORTED} more"


def bypassed(names: Iterable[str] | None = None) -> list[str]:
    """Why records of the app's loggers might not reach a handler on the root logger at INFO (empty: they
    do): the root above INFO, or an ``app`` logger disabled, not propagating, or set above INFO."""
    root = logging.getLogger()
    problems = []
    if root.level > LEVEL:
        problems.append(f"the root logger is at {logging.getLevelName(root.level)}")
    if names is None:
        names = [name for name in logging.root.manager.loggerDict if name == "app" or name.startswith("app.")]
    for name in sorted(names):
        logger = logging.getLogger(name)
        if logger.disabled:
            problems.append(f"logger {name} is disabled")
        if not logger.propagate:
            problems.append(f"logger {name} does not propagate")
        if logger.getEffectiveLevel() > LEVEL:
            problems.append(f"logger {name} is at {logging.getLevelName(logger.getEffectiveLevel())}")
    return problems


COLLECTOR = LogCollector()
"""The session's collector (installed by tests/conftest.py)."""
_saved_root_level: int | None = None


def install() -> None:
    """Put the collector on the root logger and let INFO through the root (its default is WARNING, and
    the app's ``logging.basicConfig`` does nothing once the root has a handler, so it would not lower it)."""
    global _saved_root_level
    root = logging.getLogger()
    if COLLECTOR not in root.handlers:
        root.addHandler(COLLECTOR)
    _saved_root_level = root.level
    if root.level > LEVEL:
        root.setLevel(LEVEL)


def uninstall() -> None:
    root = logging.getLogger()
    root.removeHandler(COLLECTOR)
    if _saved_root_level is not None:
        root.setLevel(_saved_root_level)


def installed() -> bool:
    return COLLECTOR in logging.getLogger().handlers


def register_server_output(stdout: Path, stderr: Path, base_url: str | None = None) -> None:
    """For tests/e2e/conftest.py: a stopped server process's stdout and stderr files."""
    COLLECTOR.add_server_output(stdout, stderr, base_url)
