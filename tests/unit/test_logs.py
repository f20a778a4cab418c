"""Log lines: one JSON object per line (or text in a terminal), each naming the request it was written in."""

import asyncio
import io
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.api.metrics import Metrics
from app.api.request_log import RequestLogMiddleware
from app.logs import (
    JsonFormatter,
    RequestContextFilter,
    TextFormatter,
    build_handler,
    configure_logging,
    current_request_id,
    request_context,
    wants_json,
)
from tests.factories import subject_id

ROOT = Path(__file__).resolve().parents[2]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def record(message: str = "hello world", /, *args: object, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord("app.test", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_json_line_has_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(record())

    document = json.loads(line)
    assert "\n" not in line
    assert document.keys() == {"time", "level", "logger", "message"}
    assert document["level"] == "WARNING"
    assert document["logger"] == "app.test"
    assert document["message"] == "hello world"
    assert document["time"].endswith("Z")
    assert abs(datetime.fromisoformat(document["time"]) - datetime.now(UTC)) < timedelta(minutes=1)


def test_the_request_fields_are_keys_of_their_own_and_nothing_else_is() -> None:
    fields = {
        "request_id": "req-1",
        "method": "GET",
        "route": "/v1/assessments/{assessment_id}",
        "status": 200,
        "duration_ms": 1.5,
        "caller": "edc-pitt",
    }
    document = json.loads(JsonFormatter().format(record(**fields, subject="T-1")))

    assert {key: document[key] for key in fields} == fields
    assert "subject" not in document


def test_a_json_line_stays_one_line_whatever_the_message_holds() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = record("two\nlines \u2028 and more")
        failed.exc_info = sys.exc_info()

    line = JsonFormatter().format(failed)

    assert len(line.splitlines()) == 1
    document = json.loads(line)
    assert document["message"] == "two\nlines \u2028 and more"
    assert "RuntimeError" in document["exception"]


def compact(document: Any) -> str:
    """The standard library's compact JSON of ``document``: what a line holds."""
    return json.dumps(document, separators=(",", ":"), default=str)


def test_a_json_line_is_written_as_json_dumps_writes_it() -> None:
    made = record("caf\u00e9 %s", "\u2028", request_id="req-1", status=201, duration_ms=2.5, caller=object())

    line = JsonFormatter().format(made)

    document = json.loads(line)
    assert line == compact(document)  # compact, and ASCII only
    assert line.isascii()
    assert document["caller"].startswith("<object object at ")  # what is no JSON type, as str() gives it


def test_an_ascii_line_is_the_same_json_whichever_serialiser_writes_it() -> None:
    control = "".join(chr(code) for code in range(32))
    made = record('GET %s "quoted" \\ %s', "/v1/x", control, request_id="r", status=200, duration_ms=12.3)
    huge = record("GET /", request_id="r", status=2**70)  # beyond 64 bits: orjson refuses it

    line, fallback = JsonFormatter().format(made), JsonFormatter().format(huge)

    assert line == compact(json.loads(line))
    assert json.loads(line)["message"] == f'GET /v1/x "quoted" \\ {control}'
    assert fallback == compact(json.loads(fallback))
    assert json.loads(fallback)["status"] == 2**70


def test_a_line_is_timed_to_the_millisecond_in_utc() -> None:
    for created in (0.0, 1_764_806_399.9991, 1_764_806_400.0, 1_764_806_400.5004, 4_102_444_799.123):
        made = record()
        made.created, made.msecs = created, int((created - int(created)) * 1000) + 0.0
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")

        document = json.loads(JsonFormatter().format(made))

        assert document["time"] == expected.replace("+00:00", "Z")


def test_text_names_the_request_unless_the_message_does() -> None:
    formatter = TextFormatter()

    plain = formatter.format(record())
    in_request = formatter.format(record(request_id="req-7"))
    request_line = formatter.format(record("GET / 200 request_id=%s", "req-7", request_id="req-7"))

    assert plain.endswith(" WARNING app.test hello world")
    assert in_request.endswith(" WARNING app.test hello world request_id=req-7")
    assert request_line.endswith("GET / 200 request_id=req-7")


def test_auto_is_text_in_a_terminal_and_json_elsewhere() -> None:
    assert not wants_json("auto", _Terminal())
    assert wants_json("auto", io.StringIO())
    assert wants_json("json", _Terminal())
    assert not wants_json("text", io.StringIO())
    assert isinstance(build_handler("auto", _Terminal()).formatter, TextFormatter)
    assert isinstance(build_handler("auto", io.StringIO()).formatter, JsonFormatter)


def test_a_record_gets_the_request_id_of_the_context_it_is_written_in() -> None:
    context_filter = RequestContextFilter()
    outside = record()
    with request_context("req-9"):
        inside = record()
        named = record(request_id="other")
        context_filter.filter(inside)
        context_filter.filter(named)
    context_filter.filter(outside)

    assert getattr(inside, "request_id", None) == "req-9"
    assert getattr(named, "request_id", None) == "other"
    assert getattr(outside, "request_id", None) is None


async def test_a_task_started_in_a_request_stops_naming_it_when_the_request_ends() -> None:
    ended = asyncio.Event()
    seen: list[str | None] = []

    async def background() -> None:
        seen.append(current_request_id())
        await ended.wait()
        seen.append(current_request_id())

    with request_context("req-3"):
        task = asyncio.create_task(background())
        await asyncio.sleep(0)
    ended.set()
    await task

    assert seen == ["req-3", None]


def small_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    inner = logging.getLogger("app.test.inner")

    @app.get("/v1/subjects/{subject_id}")
    async def subject(subject_id: str) -> dict[str, str]:
        inner.info("looked a subject up")
        return {}

    app.add_middleware(RequestLogMiddleware, sink=metrics)
    return app


async def test_every_line_of_a_request_names_it_and_the_request_line_has_its_fields(
    json_log: io.StringIO,
) -> None:
    metrics = Metrics()
    subject = subject_id("LOG")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=small_app(metrics)), base_url="http://test"
    ) as client:
        response = await client.get(f"/v1/subjects/{subject}", headers={"x-request-id": "req-42"})

    assert response.headers["x-request-id"] == "req-42"
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    ours = [line for line in lines if line["logger"].startswith("app.")]
    assert [line["message"] for line in ours] == ["looked a subject up", ours[-1]["message"]]
    assert all(line["request_id"] == "req-42" for line in ours)
    request_line = ours[-1]
    assert request_line["logger"] == "app.requests"
    assert request_line["method"] == "GET"
    assert request_line["route"] == "/v1/subjects/{subject_id}"
    assert request_line["status"] == 200
    assert request_line["duration_ms"] >= 0
    assert request_line["caller"] == "-"
    assert not [line for line in ours if subject in json.dumps(line)]  # (httpx's own lines name the path)
    text, _ = metrics.render()
    assert b'route="/v1/subjects/{subject_id}"' in text
    assert subject.encode() not in text


def _log_from_a_fresh_process(log_format: str) -> str:
    """What ``configure_logging`` writes in a process of its own, whose standard error is a pipe."""
    program = (
        "import logging\n"
        "from app.logs import configure_logging\n"
        f"configure_logging('INFO', {log_format!r})\n"
        "logging.getLogger('app.test').info('started on %s', 'a pipe')\n"
        "logging.getLogger('app.test').debug('not shown')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stderr


def test_standard_error_that_is_not_a_terminal_gets_json() -> None:
    lines = _log_from_a_fresh_process("auto").splitlines()

    assert len(lines) == 1
    assert json.loads(lines[0])["message"] == "started on a pipe"


def test_the_service_s_logging_skips_what_neither_format_writes() -> None:
    program = (
        "import logging\n"
        "from app.logs import configure_logging\n"
        "configure_logging('INFO', 'json')\n"
        "print(logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )

    assert done.stdout.split() == ["None", "False", "False", "False"]


def test_text_can_be_asked_for() -> None:
    output = _log_from_a_fresh_process("text")

    assert output.rstrip().endswith(" INFO app.test started on a pipe")
    assert not output.startswith("{")


def test_a_root_logger_with_a_handler_is_left_alone() -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    assert root.handlers  # the log canary's, in this test session
    configure_logging("DEBUG", "json")

    assert (list(root.handlers), root.level) == before
    assert logging._srcfile is not None  # the process's other logging settings too
    assert logging.logThreads
