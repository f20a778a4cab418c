"""Log lines as people read them in a terminal, or one JSON object per line for a log collector.

Every line written while a request is handled names that request's id (``request_id``), taken from a
context variable the request log middleware sets (app/api/request_log.py), so that a line from deep in the
service can be traced back to the request and its response's ``X-Request-ID``. The request log line itself
gives its fields (method, route, status, duration, caller) as separate JSON keys. Only those named fields
are ever written as keys: whatever else a record carries stays out of the JSON.
"""

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TextIO

import orjson

LogFormat = Literal["auto", "json", "text"]

REQUEST_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "caller")
"""The request log line's fields, each its own key in JSON (``extra=`` on the record)."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class _Request:
    """The current request, as a log line names it. Mutable on purpose: a task started during a request
    (a lookup coalescer, say) copies the context and outlives the request; once the request has ended its
    lines must not go on naming it."""

    __slots__ = ("request_id",)

    def __init__(self, request_id: str) -> None:
        self.request_id: str | None = request_id


_current: ContextVar[_Request | None] = ContextVar("il6_request", default=None)


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Within the block (and the tasks it starts, while it lasts), log lines name ``request_id``."""
    request = _Request(request_id)
    token = _current.set(request)
    try:
        yield
    finally:
        request.request_id = None
        _current.reset(token)


def current_request_id() -> str | None:
    request = _current.get()
    return None if request is None else request.request_id


class RequestContextFilter(logging.Filter):
    """Gives each record the current request's id (unless the record names one already)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = current_request_id()
            if request_id is not None:
                record.request_id = request_id
        return True


_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
"""The standard library's compact JSON, ASCII-only (``ensure_ascii``): no character in a message can ever
end the line early for a line-based collector. A value of no JSON type is written as ``str()`` gives it."""


def _json_line(document: dict[str, Any]) -> str:
    """``document`` as one line of compact ASCII JSON.

    orjson writes it in a tenth of ``_ENCODER``'s time (a line is logged for every request), escaping
    control characters as ``_ENCODER`` does. It writes other characters as themselves, so a line holding
    any, or a value orjson refuses (an integer beyond 64 bits), is written by ``_ENCODER``.
    """
    try:
        line = orjson.dumps(document, default=str).decode()
    except orjson.JSONEncodeError:
        return _ENCODER.encode(document)
    return line if line.isascii() else _ENCODER.encode(document)


_second: tuple[int, str] = (-1, "")
"""The last whole second a line was timed in, and its text: one tuple, so that threads logging at once
never pair one second with another's text."""


def _utc_time(record: logging.LogRecord) -> str:
    """The record's time in UTC, to the millisecond, as ISO 8601 with 'Z'; its second formatted once."""
    global _second
    second = int(record.created)
    cached, text = _second
    if cached != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, text)
    return f"{text}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the request
    fields the record has, and ``exception`` / ``stack`` when it carries them."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in REQUEST_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                document[field] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return _json_line(document)


class TextFormatter(logging.Formatter):
    """``time level logger message``, and ``request_id=...`` at the end of a line written during a request
    whose message does not name it already (the request log line does)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        if request_id is not None and "request_id=" not in record.message:
            line += f" request_id={request_id}"
        return line


def wants_json(log_format: LogFormat, stream: TextIO) -> bool:
    """``auto``: JSON unless the stream is a terminal (a person reading)."""
    if log_format == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (isatty is not None and isatty())
    return log_format == "json"


def build_handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing to ``stream`` (standard error) in the chosen format, naming each line's request."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if wants_json(log_format, stream) else TextFormatter())
    handler.addFilter(RequestContextFilter())
    return handler


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Configure the root logger, as ``logging.basicConfig`` would: only when it has no handler yet (a
    test session's, or a deployment's own logging configuration, is left alone).

    In JSON, uvicorn's server lines (start, stop, errors) go through the same handler so that every line
    on standard error parses; its access log is left as uvicorn set it (off in this service's image, and
    its lines carry raw paths, which name subject ids).
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = build_handler(log_format)
    root.addHandler(handler)
    root.setLevel(level)
    # Neither format writes where a line was logged from, nor its thread or process: the switches of the
    # logging HOWTO's "Optimization" section spare every call (one per request) a walk up the stack and
    # three lookups. Only here, where the service owns the process's logging.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if isinstance(handler.formatter, JsonFormatter):
        server = logging.getLogger("uvicorn")
        server.handlers.clear()
        server.propagate = True
