"""Decision latency of the real service on an empty audit store, and again once the store holds N records.

A benchmark, not a test. The performance goal: decisions stay flat as the store grows, the p50 of
``POST /v1/assessments`` with 10,000,000 audit records within 10% of its p50 on an empty store.

It creates a database ``store_growth_<hex>``, migrates it, makes a signing key, creates an API key
and starts the service as bench/audit_appends.py does (its helpers, imported: the production environment,
a login that is a member of ``il6_app`` and owns nothing, ``uvicorn app.main:create_app --factory
--workers N --no-access-log``, no rate limit), and drives ``POST /v1/assessments`` with wrk as it does:
the same submission (``body_template``), each request with its own subject and Idempotency-Key, each 201
an audit record committed with ``synchronous_commit`` on. Per concurrency (16 and 64 unless told), one
stage of ``--duration`` seconds (15) after an unreported warm-up: 201s per second, p50 and p99.

That on the empty store. Then the service is stopped, the audit trail filled to ``--rows`` records (ten
million unless told), both tables vacuumed and analysed (``VACUUM (ANALYZE)``, as the owner; autovacuum
then has nothing to do while the stages run), the service started again with the same command line, and
the same stages run. Before each server starts, a ``CHECKPOINT``: what the fill wrote is on disk rather
than being written while the stages run, and both servers start at the same point of the checkpoint
cycle, where each index page an insert changes for the first time is written to the WAL whole (as in a
store taking decisions all day, where a checkpoint comes every five minutes). Right after, a control:
a new empty database, the same stages (``--no-control`` skips it; the filled store waits, idle). The
machine may be shared, and the filled store's stages run most of an hour after the empty store's: how far
the empty store's own p50 moved meanwhile says how much of a difference the machine alone makes. It
prints the three, per concurrency the filled store's p50 over the empty store's (and over the control's),
and whether that is within 10%. With ``--rounds N`` the two stores then take turns, N - 1 rounds more,
each round's order swapped (control then filled, filled then control, ...); the filled store's p50 is
compared with the control's run next to it, round by round, and the median of those ratios judged: on a
shared machine whose speed drifts within minutes, the one comparison that drift does not decide.

The code: others may edit the working tree while a run goes on (a run of ten million takes most of an
hour). At its start the run copies app/, migrations/ and alembic.ini from where this script imported
``app`` (the project, or the directory PYTHONPATH names: an export of a commit, say) into its state
directory, the servers' working directory, whence uvicorn imports them (it puts its working directory
first on the import path); ``il6`` is run from there too (``IL6_SNAPSHOT``). So the servers run the same
code, the code this script imported at its start (else the service's last record, made again below,
would differ). Only ``il6 keys create`` (this directory's ``create_api_key``) runs from that directory
itself, at the start.

How the store is filled: with the records the service writes for this bench's submission, linked and
hashed by the service's own code, streamed with binary COPY as the database owner.

- First the record the service wrote last in the empty stages (a wrk request's) is read back and made
  again with the service's code: the submission read as the service reads it (``parse_exact_json``,
  ``plain_submission``), decided by ``AssessmentService._new_assessment`` under the bundled classifiers
  with that record's id, caller, request id and key, and linked and hashed as ``AssessmentRepository.append``
  does (``values = {**vars(new), seq, prev_hash, recorded_at}``, ``record_hash(to_record(values))``).
  Every column must come out as stored, and the Idempotency-Key binding as stored (``fingerprint()``);
  else the run stops. The fast records below must reproduce it byte for byte too.
- Each filled record is that submission with its own subject id, which is also its Idempotency-Key, as
  wrk's are (``f<hex>c16-1-<seq>``), a new id and request id (``uuid4()``, as the service and its request
  log make them), the caller of the records above (the bench key's name), and the service's decision,
  classifier and media type. It follows the head: seq + 1, the head's hash its prev_hash, its time from
  the database's clock (below).
- Fast records: the varying fields of a template record are set to markers and the template's canonical
  bytes taken once, ``canonical_bytes(to_record(values))``; each filled record's canonical bytes are those
  bytes with its own values substituted (RFC 8785 orders members by name, never by value, and the values
  substituted need no JSON escaping), its hash their SHA-256 (as ``record_hash`` takes it); its request
  body, input document and binding fingerprint likewise; the other columns are the template's. Its binary
  COPY row is then put together field by field. On a sample (the first filled record, every
  ``--check-every``-th, the last) the record is made again the slow way, with the service's code as above
  (``record_hash(to_record(values))``), and its COPY row (every column), hash and binding row must be
  equal byte for byte to the fast ones (``check_record``); else the run stops.
- Times: the chain's times never decrease, and the empty stages' records at its head were written a
  minute before, so the filled records cannot be placed months back. Each transaction first reads the
  database's ``clock_timestamp()``; its records are spread evenly from the previous transaction's reading
  (the head's time, for the first) up to it: in the past, never after the database's clock, as the service
  would have timed them had it taken them at the fill's pace.
- Idempotency-Key bindings: each record's goes into ``idempotency_key`` in the same transaction (the
  client, the key, the fingerprint, the decision; created at the record's time). The bench's requests all
  carry a key and the service never deletes a binding (an expired one is replaced only when its key comes
  again), so a store that took ten million such decisions holds ten million bindings, which each
  decision's key lookup searches. ``--no-bindings`` leaves them out.
- ``--chunk`` records (100,000) per transaction, two COPYs (``assessment``, then ``idempotency_key``), the
  rows made in this process while a psycopg writer thread sends the ones made before (``QueuedLibpqWriter``)
  and PostgreSQL, in its own process, stores them. Making them is most of the fill's time (some 60 µs a
  record on this machine, its 2 CPUs shared; a check against the service's code some 400).
- During the fill (``bulk_load``) the unique constraints on random keys (``RANDOM_UNIQUES``: the id and the
  two hashes), the foreign keys that reference ``assessment.id`` (which need one of them) and the insert
  trigger ``assessment_extends_chain`` are dropped or disabled: the trigger queries the chain for each
  record, and each insert into those three indexes lands on a leaf page of its own, which the 128 MB of
  shared buffers seldom hold and which is written to the WAL whole the first time it changes after a
  checkpoint. The other indexes (seq, subject, site, time, supersedes, the bindings' key)
  stay. Afterwards each constraint is added back with the definition PostgreSQL printed for it before (which
  checks every record: unique ids and hashes, every binding's decision present), the trigger enabled, and
  the indexes, constraints and triggers of the three tables compared with what they were before; the run
  stops on a difference. What the trigger checks of each record (it extends the one before: seq + 1, that
  record's hash, no earlier time; and it is not timed after the clock) is then checked for every filled
  record in one pass (``LINKS``). The indexes added back are built compact, as CREATE INDEX builds them,
  where the service's inserts would have split pages as they went: somewhat smaller than the service would
  have grown them.

Afterwards, as bench/audit_appends.py checks: the rows each server's stages added hold their 201s (wrk
stops with requests in flight that the service may still record: up to that many more), every record
has its binding, and ``il6 audit verify --from-seq S`` (DATABASE_URL the bench database's, as the
service's login) is intact over the records the filled store's stages wrote and the ``--verify-stretch``
filled records before them (5,000). ``--verify-all`` verifies the whole chain too (slow: every record is
hashed again). A verification that does not finish (killed, timed out) is a failed
check; the figures are printed before it runs. The database is dropped at the end (WITH FORCE) unless
``--keep``, which keeps it and the state directory (signing key, code, server logs) and prints where they
are. Another process using the CPUs changes every figure: the load average is printed at the start,
before each server starts, after the fill and at the end.

Run from the project root, with PostgreSQL reachable (TEST_POSTGRES_ADMIN_URL, as for the tests) and wrk
installed; ten million records take some 22 GB of disk (table and TOAST 16, indexes 4, bindings 2.5, as a
run of 200,000 grew them) and half an hour or more::

    .venv/bin/python bench/store_growth.py                              # 10,000,000 records
    .venv/bin/python bench/store_growth.py --rows 100000 --duration 10 --concurrency 16
    .venv/bin/python bench/store_growth.py --verify-all --keep
"""

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

import audit_appends
import psycopg
from audit_appends import (  # this directory's (scripts run from it)
    SERVER_PIDS,
    SERVICE_APP,
    SERVICE_LOGIN,
    SERVICE_LOGIN_SQL,
    STAGE_HEADER,
    StageResult,
    _run,
    _stage_line,
    body_template,
    create_api_key,
    fresh_database,
    machine_facts,
    run_wrk,
    running_server,
    server_facts,
    service_environment,
    settled_row_count,
    with_cpu,
)
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter
from psycopg.rows import dict_row
from sqlalchemy import Table, make_url

import app
from app.api.exact_json import JSON_MEDIA_TYPE, parse_exact_json
from app.api.intake import plain_submission
from app.domain import canonical_json
from app.domain.access import SiteAccess
from app.domain.audit import canonical_bytes, canonical_time, record_hash, to_record
from app.domain.classifiers.registry import load_registry
from app.service.assessments import AssessmentService, Caller, RawRequest, fingerprint
from app.service.chain_writer import ChainWriter
from app.service.classifiers import ClassifierCatalog
from app.store.models import Assessment, IdempotencyKey
from app.store.repositories import NewAssessment
from app.store.unit_of_work import UnitOfWork

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PREFIX = "store_growth_"
"""Not ``il6_bench_``: on a shared machine another session's clean-up of leftover benchmark databases
dropped this one, and ended this script, in the middle of a run."""
WITHIN = 0.10
"""The goal: the filled store's p50 at most 10% above the empty store's."""
COLUMNS = [column.name for column in cast(Table, Assessment.__table__).c]
BINDING_COLUMNS = [column.name for column in cast(Table, IdempotencyKey.__table__).c]
READY_TIMEOUT_S = 120.0
"""How long a server may take to answer /readyz (audit_appends.py's 30 s, raised: after a fill of tens of
gigabytes the page cache holds the store rather than the Python packages the service imports, and the
first start after it may read them from disk while other processes share the CPUs)."""
PIECE = 2000
"""Records per COPY write (some 6 MB)."""


def owner_url(database_url: str) -> str:
    """The bench database's URL for psycopg itself, as its owner (the URL ``fresh_database`` gives)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- the service's records ---


def _no_store() -> UnitOfWork:
    raise RuntimeError("making a record never touches the store")


class ServiceRecords:
    """What the service's own code makes of the bench's submission for ``POST /v1/assessments``: the
    decision (``AssessmentService._new_assessment``), its audit record as ``AssessmentRepository.append``
    links and hashes it, and its Idempotency-Key's fingerprint. Slow (some 150 µs a record): the
    reference the fast records are checked against."""

    def __init__(self, client_id: str) -> None:
        self._registry = load_registry()
        # Only _new_assessment is used (reading the submission and deciding); the writer never runs.
        catalog = ClassifierCatalog(self._registry, _no_store, {})
        self._service = AssessmentService(catalog, _no_store, ChainWriter(_no_store))
        self._client_id = client_id
        self._body = body_template()

    def new(self, key: str, decision_id: uuid.UUID, request_id: str) -> tuple[NewAssessment, str]:
        """The decision a request with this key (its subject too, as wrk sends them) makes, and the
        fingerprint its key is bound to."""
        body = (self._body % key).encode()
        submission = plain_submission(parse_exact_json(body))
        caller = Caller(self._client_id, request_id, SiteAccess(None))
        version = self._registry.resolve(submission.classifier)
        raw = RawRequest(body, JSON_MEDIA_TYPE)
        new = self._service._new_assessment(decision_id, version, submission, raw, caller, key)
        return new, fingerprint(submission)

    @staticmethod
    def appended(new: NewAssessment, seq: int, prev_hash: str, recorded_at: datetime) -> dict[str, Any]:
        """The row ``AssessmentRepository.append`` inserts for ``new`` at this link."""
        values = {**vars(new), "seq": seq, "prev_hash": prev_hash, "recorded_at": recorded_at}
        values["hash"] = record_hash(to_record(values))
        return values

    def binding(self, values: Mapping[str, Any], fingerprint_: str) -> dict[str, Any]:
        """The ``idempotency_key`` row bound to the record (created at its time)."""
        return {
            "client_id": self._client_id,
            "key": values["idempotency_key"],
            "fingerprint": fingerprint_,
            "assessment_id": values["id"],
            "created_at": values["recorded_at"],
        }


PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""Where PostgreSQL's binary timestamps count from."""
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)


def binary_field(value: Any) -> bytes:
    """A value as a field of PostgreSQL's binary COPY format (its length, then its bytes; NULL is -1):
    ``seq`` a bigint, text UTF-8, a uuid its 16 bytes, a time microseconds since 2000, JSONB version 1 and
    the text ``json.dumps`` writes (PostgreSQL keeps the value, not the text), bytea as is."""
    if value is None:
        return _INT32.pack(-1)
    if isinstance(value, int):
        data = _INT64.pack(value)
    elif isinstance(value, str):
        data = value.encode()
    elif isinstance(value, uuid.UUID):
        data = value.bytes
    elif isinstance(value, datetime):
        data = _INT64.pack((value - PG_EPOCH) // timedelta(microseconds=1))
    elif isinstance(value, dict):
        data = b"\x01" + json.dumps(value).encode()
    elif isinstance(value, bytes):
        data = value
    else:
        raise TypeError(f"no binary COPY form for {type(value).__name__}")
    return _INT32.pack(len(data)) + data


def binary_tuple(values: Mapping[str, Any], columns: list[str]) -> bytes:
    """A row in the binary COPY format, made value by value: what the fast records are checked against."""
    return struct.pack(">h", len(columns)) + b"".join(binary_field(values[column]) for column in columns)


VARYING = [
    "seq",
    "prev_hash",
    "hash",
    "id",
    "recorded_at",
    "request_id",
    "idempotency_key",
    "subject_id",
    "request_sha256",
    "request_body",
    "input",
]
"""The columns that differ from one filled record to the next; the others are the template's."""
RECORD_COLUMNS = [column for column in COLUMNS if column not in VARYING] + VARYING
"""The order the fill's COPY names the columns in: the template's first, then these."""
COPY_RECORDS = sql.SQL("COPY assessment ({}) FROM STDIN (FORMAT BINARY)").format(
    sql.SQL(", ").join(map(sql.Identifier, RECORD_COLUMNS))
)
COPY_BINDINGS = sql.SQL("COPY idempotency_key ({}) FROM STDIN (FORMAT BINARY)").format(
    sql.SQL(", ").join(map(sql.Identifier, BINDING_COLUMNS))
)
MARKS = {
    "key": "QzKeyMarkQz",
    "id": "QzIdMarkQz",
    "request_id": "QzRequestIdMarkQz",
    "request_sha256": "QzBodyShaMarkQz",
    "prev_hash": "QzPrevHashMarkQz",
    "recorded_at": "QzRecordedAtMarkQz",
    "seq": "9007199254740991",
}
"""Placeholders for what varies in the template's texts: strings that need no escaping in JSON (and that
no submission, decision or digest holds), and seq's the largest integer RFC 8785 writes."""


def _format(text: str) -> str:
    """``text`` as a %-format, each mark a named field."""
    text = text.replace("%", "%%")
    for name, mark in MARKS.items():
        text = text.replace(mark, f"%({name})s")
    return text


class FastRecords:
    """The same records as ``ServiceRecords``, made by substitution: into the service's own output for a
    template record whose varying fields hold ``MARKS`` (its canonical bytes, its request body and input
    document), and as binary COPY rows whose other fields are the template's."""

    def __init__(self, service: ServiceRecords) -> None:
        new, _ = service.new(MARKS["key"], uuid.UUID(int=0), MARKS["request_id"])
        marked: dict[str, Any] = {
            **vars(new),
            "seq": int(MARKS["seq"]),
            "prev_hash": MARKS["prev_hash"],
            "recorded_at": MARKS["recorded_at"],
            "id": MARKS["id"],
            "request_sha256": MARKS["request_sha256"],
        }
        self._canonical = _format(canonical_bytes(to_record(marked)).decode())  # as record_hash takes them
        self._body = _format(new.request_body)
        self._input = _format(json.dumps(new.input))
        fingerprinted = {"input": new.input, "supersedes": None, "correction_reason": None}
        self._fingerprint = _format(canonical_json.dumps(fingerprinted).decode())  # as fingerprint() does
        fixed = RECORD_COLUMNS[: -len(VARYING)]
        self._record = struct.pack(">h", len(RECORD_COLUMNS)) + b"".join(
            binary_field(marked[column]) for column in fixed
        )
        self._binding = struct.pack(">h", len(BINDING_COLUMNS)) + binary_field(new.client_id)

    def make(
        self,
        seq: int,
        prev_hash: str,
        recorded_at: datetime,
        key: str,
        decision_id: uuid.UUID,
        request_id: str,
    ) -> tuple[bytes, bytes, str]:
        """A record's binary COPY row, its binding's, and its hash."""
        fields = {
            "seq": seq,
            "prev_hash": prev_hash,
            "recorded_at": canonical_time(recorded_at),
            "key": key,
            "id": str(decision_id),
            "request_id": request_id,
        }
        body = (self._body % fields).encode()
        fields["request_sha256"] = body_sha = hashlib.sha256(body).hexdigest()
        digest = hashlib.sha256((self._canonical % fields).encode()).hexdigest()
        document = b"\x01" + (self._input % fields).encode()  # JSONB's binary form: version 1, the text
        varying = (
            seq,
            prev_hash,
            digest,
            decision_id,
            recorded_at,
            request_id,
            key,
            key,
            body_sha,
            body,
            document,
        )
        record = self._record + b"".join(map(binary_field, varying))
        fingerprint_ = hashlib.sha256((self._fingerprint % fields).encode()).hexdigest()
        binding = self._binding + b"".join(map(binary_field, (key, fingerprint_, decision_id, recorded_at)))
        return record, binding, digest


def check_record(
    service: ServiceRecords,
    fast: FastRecords,
    seq: int,
    prev_hash: str,
    recorded_at: datetime,
    key: str,
    decision_id: uuid.UUID,
    request_id: str,
) -> None:
    """The fast record equals, byte for byte, what the service's code makes; raises where not."""
    new, fingerprint_ = service.new(key, decision_id, request_id)
    values = service.appended(new, seq, prev_hash, recorded_at)
    record, binding, digest = fast.make(seq, prev_hash, recorded_at, key, decision_id, request_id)
    if record != binary_tuple(values, RECORD_COLUMNS) or digest != values["hash"]:
        raise RuntimeError(f"record {seq}: the substituted record differs from the service's")
    if binding != binary_tuple(service.binding(values, fingerprint_), BINDING_COLUMNS):
        raise RuntimeError(f"record {seq}: the substituted binding differs from the service's")


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    recorded_at: datetime
    client_id: str


def check_against_stored(url: str) -> Head:
    """The head record, written by the service in the empty stages, made again by ``ServiceRecords`` and
    ``FastRecords``: every column, and its binding, must be as stored. The head's link, time and caller."""
    with psycopg.connect(owner_url(url), connect_timeout=5, row_factory=dict_row) as owner:
        stored = owner.execute("SELECT * FROM assessment ORDER BY seq DESC LIMIT 1").fetchone()
        if stored is None:
            raise RuntimeError("the empty-store stages recorded nothing: no service record to start from")
        bound = owner.execute(
            "SELECT * FROM idempotency_key WHERE client_id = %s AND key = %s",
            (stored["client_id"], stored["idempotency_key"]),
        ).fetchone()
    service = ServiceRecords(stored["client_id"])
    new, fingerprint_ = service.new(stored["idempotency_key"], stored["id"], stored["request_id"])
    values = service.appended(new, stored["seq"], stored["prev_hash"], stored["recorded_at"])
    differing = [column for column in COLUMNS if values[column] != stored[column]]
    if differing:
        raise RuntimeError(f"the service's last record, made again, differs in {differing}")
    expected = service.binding(values, fingerprint_)
    if bound is None or {**bound, "created_at": None} != {**expected, "created_at": None}:
        raise RuntimeError("the service's last record's Idempotency-Key binding differs from the one made")
    check_record(
        service,
        FastRecords(service),
        stored["seq"],
        stored["prev_hash"],
        stored["recorded_at"],
        stored["idempotency_key"],
        stored["id"],
        stored["request_id"],
    )
    return Head(stored["seq"], stored["hash"], stored["recorded_at"], stored["client_id"])


# --- filling ---


RANDOM_UNIQUES = ("uq_assessment_id", "uq_assessment_hash", "uq_assessment_prev_hash")
"""The unique constraints on random keys (a uuid4, SHA-256 hashes), dropped for the fill and added back
after it (with the foreign keys that reference ``assessment.id``): in an index of millions of entries
each insert lands on a leaf page of its own, which the 128 MB of shared buffers seldom hold and which,
the first time it changes after a checkpoint, is written to the WAL whole."""
CHAIN_TRIGGER = "assessment_extends_chain"
SCHEMA = """
SELECT 'index', tablename, indexname, indexdef FROM pg_indexes
 WHERE schemaname = 'public' AND tablename IN ('assessment', 'idempotency_key', 'shadow_decision')
UNION ALL
SELECT 'constraint', conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid IN ('assessment'::regclass, 'idempotency_key'::regclass, 'shadow_decision'::regclass)
UNION ALL
SELECT 'trigger', tgrelid::regclass::text, tgname, tgenabled::text || ' ' || pg_get_triggerdef(oid)
 FROM pg_trigger WHERE tgrelid = 'assessment'::regclass AND NOT tgisinternal
ORDER BY 1, 2, 3
"""
"""The indexes, constraints and triggers of the audit trail and the tables that reference it, as the
migrations made them: the same before and after the fill, or the run stops."""
DROPPED = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE (contype = 'f' AND confrelid = 'assessment'::regclass)
    OR (conrelid = 'assessment'::regclass AND conname = ANY(%s))
 ORDER BY contype = 'f', conname
"""
"""What the fill drops: the random unique constraints, then the foreign keys that need one of them; in
the order they are added back."""


def schema(owner: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return owner.execute(SCHEMA).fetchall()


@contextmanager
def bulk_load(owner: psycopg.Connection[Any]) -> Iterator[None]:
    """The audit trail without ``RANDOM_UNIQUES``, the foreign keys on ``assessment.id`` and the chain's
    insert trigger while the block runs; then each added back (its definition as PostgreSQL printed it
    before) and the trigger enabled, and the schema compared with what it was: the run stops on a
    difference. Prints what each step took."""
    before = schema(owner)
    dropped = owner.execute(DROPPED, (list(RANDOM_UNIQUES),)).fetchall()
    with owner.transaction():
        for table, name, _ in reversed(dropped):
            owner.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.Identifier(table), sql.Identifier(name)
                )
            )
        owner.execute(
            sql.SQL("ALTER TABLE assessment DISABLE TRIGGER {}").format(sql.Identifier(CHAIN_TRIGGER))
        )
    try:
        yield
    finally:
        owner.execute(
            sql.SQL("ALTER TABLE assessment ENABLE TRIGGER {}").format(sql.Identifier(CHAIN_TRIGGER))
        )
        owner.execute("SET maintenance_work_mem = '1GB'")
        for table, name, definition in dropped:
            started = time.perf_counter()
            owner.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
                )
            )
            seconds = time.perf_counter() - started
            print(f"  ALTER TABLE {table} ADD CONSTRAINT {name} {definition}: {seconds:.1f} s", flush=True)
        owner.execute("RESET maintenance_work_mem")
        after = schema(owner)
        if after != before:
            differences = sorted(set(before) ^ set(after))
            raise RuntimeError(f"the schema after the fill differs from the migrations': {differences}")
        print(f"  indexes, constraints and triggers as before the fill ({len(after)} compared)", flush=True)


LINKS = """
SELECT count(*), min(seq) FILTER (WHERE NOT linked) FROM (
    SELECT seq, seq = lag(seq) OVER w + 1 AND prev_hash = lag(hash) OVER w
        AND recorded_at >= lag(recorded_at) OVER w AND recorded_at <= clock_timestamp() AS linked
    FROM assessment WHERE seq >= %s WINDOW w AS (ORDER BY seq)
) AS links WHERE seq > %s
"""
"""What the insert trigger checks of each record, for every record after a given one, in one pass: it
extends the record before it (seq + 1, that record's hash, no earlier time) and is not timed after the
database's clock."""


def check_links(owner: psycopg.Connection[Any], after: int) -> str:
    started = time.perf_counter()
    row = owner.execute(LINKS, (after, after)).fetchone()
    checked, broken = (0, None) if row is None else (int(row[0]), row[1])
    if broken is not None:
        raise RuntimeError(f"filled record {broken} does not extend the record before it")
    return (
        f"  links of the {checked:,} filled records (what the insert trigger checks): intact "
        f"({time.perf_counter() - started:.1f} s)"
    )


@dataclass
class Fill:
    rows: int = 0
    seconds: float = 0.0
    making_s: float = 0.0
    checked: int = 0


def fill(
    owner: psycopg.Connection[Any],
    head: Head,
    total: int,
    chunk: int,
    check_every: int,
    bindings: bool,
    progress_every: int,
) -> Fill:
    """Append records after ``head`` up to ``total``, ``chunk`` per transaction (see the docstring)."""
    service = ServiceRecords(head.client_id)
    fast = FastRecords(service)
    tag = f"f{secrets.token_hex(4)}c16-1"
    seq, prev_hash, lower = head.seq, head.hash, head.recorded_at
    done = Fill()
    started = time.perf_counter()
    reported = seq
    cursor = owner.cursor()
    while seq < total:
        count = min(chunk, total - seq)
        with owner.transaction():
            row = cursor.execute("SELECT clock_timestamp()").fetchone()
            upper = cast(datetime, row[0]) if row else datetime.now(UTC)
            binding_rows: list[bytes] = []
            with cursor.copy(COPY_RECORDS, writer=QueuedLibpqWriter(cursor)) as copy:
                copy.write(COPY_HEADER)
                for start in range(0, count, PIECE):
                    making = time.perf_counter()
                    rows: list[bytes] = []
                    for index in range(start, min(start + PIECE, count)):
                        seq += 1
                        link = (seq, prev_hash, lower + (upper - lower) * (index + 1) // count)
                        key, decision_id, request_id = f"{tag}-{seq}", uuid.uuid4(), uuid.uuid4().hex
                        if seq == head.seq + 1 or seq % check_every == 0 or seq == total:
                            check_record(service, fast, *link, key, decision_id, request_id)
                            done.checked += 1
                        record, binding, prev_hash = fast.make(*link, key, decision_id, request_id)
                        rows.append(record)
                        binding_rows.append(binding)
                    done.making_s += time.perf_counter() - making
                    copy.write(b"".join(rows))
                copy.write(COPY_TRAILER)
            if bindings:
                with cursor.copy(COPY_BINDINGS, writer=QueuedLibpqWriter(cursor)) as copy:
                    copy.write(COPY_HEADER)
                    for start in range(0, len(binding_rows), PIECE):
                        copy.write(b"".join(binding_rows[start : start + PIECE]))
                    copy.write(COPY_TRAILER)
        lower = upper
        done.rows += count
        done.seconds = time.perf_counter() - started
        if seq - reported >= progress_every or seq == total:
            reported = seq
            print(
                f"  filled to {seq:,}: {done.rows:,} records in {done.seconds:.0f} s "
                f"({done.rows / done.seconds:,.0f}/s; making them {done.making_s:.0f} s)",
                flush=True,
            )
    return done


def settle(owner: psycopg.Connection[Any]) -> list[str]:
    """``VACUUM (ANALYZE)`` both tables; what it took, and their sizes."""
    lines: list[str] = []
    for table in ("assessment", "idempotency_key"):
        started = time.perf_counter()
        owner.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
        lines.append(f"VACUUM (ANALYZE) {table}: {time.perf_counter() - started:.1f} s")
    return lines + sizes(owner)


def sizes(owner: psycopg.Connection[Any]) -> list[str]:
    lines = []
    for table in ("assessment", "idempotency_key"):
        row = owner.execute(
            sql.SQL(
                "SELECT count(*), pg_size_pretty(pg_table_size(%s)), pg_size_pretty(pg_indexes_size(%s)) "
                "FROM {}"
            ).format(sql.Identifier(table)),
            (table, table),
        ).fetchone()
        if row is not None:
            lines.append(f"{table}: {row[0]:,} rows; table {row[1]} (TOAST included), indexes {row[2]}")
        indexes = owner.execute(
            "SELECT indexrelid::regclass::text, pg_size_pretty(pg_relation_size(indexrelid)) "
            "FROM pg_index WHERE indrelid = %s::regclass ORDER BY 1",
            (table,),
        ).fetchall()
        lines.append("  " + ", ".join(f"{name} {size}" for name, size in indexes))
    return lines


def fill_store(url: str, head: Head, total: int, args: argparse.Namespace) -> Fill:
    """The fill, between ``bulk_load``'s dropping and adding back; the links checked, both tables vacuumed
    and analysed; each step printed."""
    with psycopg.connect(owner_url(url), autocommit=True, connect_timeout=5) as owner:
        print(f"filling seq {head.seq + 1:,}..{total:,}:", flush=True)
        with bulk_load(owner):
            done = fill(
                owner,
                head,
                total,
                args.chunk,
                args.check_every,
                args.bindings,
                progress_every=max(args.chunk, total // 20),
            )
            if done.rows:
                rate = done.rows / done.seconds
                print(
                    f"filled {done.rows:,} records in {done.seconds:.1f} s ({rate:,.0f}/s); {done.checked} "
                    "checked byte for byte against the service's code; adding back:",
                    flush=True,
                )
        print(check_links(owner, head.seq), flush=True)
        for line in settle(owner):
            print(line, flush=True)
    return done


# --- the report ---


SNAPSHOT = ("app", "migrations", "alembic.ini")
"""What a run copies into its state directory at its start (the service's code, its migrations and their
configuration), so that both servers and every command run the same code whatever is edited meanwhile."""
IL6_SNAPSHOT = [
    sys.executable,
    "-c",
    "import sys; from app.cli import main; sys.argv[0] = 'il6'; sys.exit(main())",
]
"""The ``il6`` command line, run in the state directory: its ``app`` is the snapshot's."""


SOURCE = Path(app.__file__).resolve().parent.parent
"""Where this script imported the service's code from: the project, or a directory PYTHONPATH names."""


def snapshot_code(state: Path) -> None:
    """Copy ``SNAPSHOT`` from ``SOURCE`` into the state directory: the servers (uvicorn puts its working
    directory, the state directory, first on the import path) and ``IL6_SNAPSHOT`` import it from there."""
    for name in SNAPSHOT:
        source = SOURCE / name
        if source.is_dir():
            shutil.copytree(source, state / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, state / name)


def code_digest(root: Path) -> str:
    """The SHA-256 of ``SNAPSHOT`` under ``root`` (its first 16 hex digits)."""
    digest = hashlib.sha256()
    for name in SNAPSHOT:
        top = root / name
        for path in sorted([top, *top.rglob("*")] if top.is_dir() else [top]):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min; {os.cpu_count()} CPUs)"


def run_il6(arguments: list[str], environment: dict[str, str], state: Path, timeout_s: float) -> str:
    """The snapshot's ``il6`` with these arguments; its standard output. A failure raises with its
    output."""
    completed = subprocess.run(  # noqa: S603 - the project's own command line, no shell
        [*IL6_SNAPSHOT, *arguments],
        env=environment,
        cwd=state,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"il6 {' '.join(arguments)} exited with {completed.returncode}:\n"
            f"{completed.stdout}{completed.stderr}"
        )
    return completed.stdout


@dataclass(frozen=True)
class Phase:
    """One server's stages on one store: the warm-up's and the measured stages' results, and the rows
    the audit trail held before and after."""

    label: str
    warm: StageResult | None
    stages: list[StageResult]
    rows_before: int
    rows_after: int

    def rows_ok(self) -> tuple[bool, str]:
        """Whether the rows the stages added hold their 201s (wrk's requests in flight aside)."""
        counted = [*([self.warm] if self.warm is not None else []), *self.stages]
        created = sum(result.created for result in counted)
        in_flight = sum(result.concurrency + result.transport_errors for result in counted)
        added = self.rows_after - self.rows_before
        ok = created <= added <= created + in_flight
        return ok, (
            f"{self.label}: rows added {added}, 201s counted {created} (warm-up included): "
            f"{'OK' if ok else 'MISMATCH'} (201s <= rows <= 201s + {in_flight}, in flight when wrk stopped)"
        )


def comparison(empty: Phase, filled: Phase) -> list[str]:
    """Per concurrency: both stores' 201s per second, p50 and p99; the p50 ratio; the filled store's
    throughput as a share of the empty store's."""
    lines = [
        f"{'conns':>5} {'empty ok/s':>11} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'filled ok/s':>12} {'p50 ms':>7} {'p99 ms':>7} {'p50 ratio':>10} {'throughput':>11}"
    ]
    for before, after in zip(empty.stages, filled.stages, strict=True):
        ratio = after.p50_ms / before.p50_ms if before.p50_ms > 0 else float("inf")
        share = after.appends_per_s / before.appends_per_s if before.appends_per_s > 0 else float("inf")
        lines.append(
            f"{before.concurrency:>5} {before.appends_per_s:>11.1f} {before.p50_ms:>7.1f} "
            f"{before.p99_ms:>7.1f} {after.appends_per_s:>12.1f} {after.p50_ms:>7.1f} {after.p99_ms:>7.1f} "
            f"{ratio:>10.3f} {100 * share:>10.1f}%"
        )
    return lines


@contextmanager
def bench_database(admin_url: str, keep: bool) -> Iterator[str]:
    """A new database, dropped afterwards by ``fresh_database`` unless it is to be kept."""
    if not keep:
        with fresh_database(admin_url, prefix=PREFIX) as url:
            yield url
        return
    name = f"{PREFIX}{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield (
        make_url(admin_url)
        .set(drivername="postgresql+psycopg", database=name)
        .render_as_string(hide_password=False)
    )


@contextmanager
def state_directory(keep: bool) -> Iterator[Path]:
    """The service's signing key, checkpoints and logs, and the wrk scripts: kept with the database."""
    if keep:
        yield Path(tempfile.mkdtemp(prefix="il6-bench-growth-"))
        return
    with tempfile.TemporaryDirectory(prefix="il6-bench-growth-") as name:
        yield Path(name)


@dataclass(frozen=True)
class Bench:
    """What every stage needs: the load generator, the server's command line and environment, the key."""

    wrk: str
    workers: int
    concurrency: list[int]
    duration_s: float
    warmup_s: float
    state: Path
    url: str
    serving: dict[str, str]
    api_key: str

    def phase(self, label: str, rows_before: int) -> Phase:
        """A checkpoint and the service's imports read once; then start the service, run the warm-up (not
        printed) and one stage per concurrency, each printed as it ends, and stop it; the rows the audit
        trail holds then."""
        started = time.perf_counter()
        with psycopg.connect(owner_url(self.url), autocommit=True, connect_timeout=5) as owner:
            owner.execute("CHECKPOINT")
        checkpoint_s = time.perf_counter() - started
        started = time.perf_counter()
        _run([sys.executable, "-c", "import app.main"], self.serving, self.state)
        importing_s = time.perf_counter() - started
        print(
            f"{label}: CHECKPOINT {checkpoint_s:.1f} s; import app.main {importing_s:.1f} s; {load()}",
            flush=True,
        )
        print(STAGE_HEADER, flush=True)
        log = self.state / f"server-{label}.log"
        try:
            with running_server(SERVICE_APP, self.workers, self.serving, self.state, log) as base:
                warm = None
                if self.warmup_s > 0:
                    warm = run_wrk(
                        self.wrk, base, self.concurrency[0], self.warmup_s, self.state, self.api_key
                    )
                measured = []
                for concurrency in self.concurrency:
                    result = with_cpu(
                        SERVER_PIDS.get(base),
                        partial(
                            run_wrk, self.wrk, base, concurrency, self.duration_s, self.state, self.api_key
                        ),
                    )
                    measured.append(result)
                    print(_stage_line(label, result), flush=True)
        except RuntimeError:
            print(f"{log.name}, its end:\n{log.read_text(errors='replace')[-3000:]}", flush=True)
            raise
        # The server is stopped: what wrk left in flight has been recorded, or refused, by now.
        return Phase(label, warm, measured, rows_before, settled_row_count(self.url))


def provision(
    url: str, state: Path, admin_url: str, pool_size: int | None, *, control: bool = False
) -> tuple[dict[str, str], str]:
    """Migrate, make the signing key, create the service's login and an API key, as bench/audit_appends.py
    does; the service's environment and the key. The ``control`` store's service signs with the same key
    and keeps its checkpoints apart."""
    environment = service_environment(url, state, pool_size)
    _run([*IL6_SNAPSHOT, "db", "upgrade"], environment, state)
    if control:
        environment["IL6_CHECKPOINT_FILE"] = str(state / "control-checkpoints.jsonl")
    else:
        keygen = ["audit", "keygen", "--output", str(state / "audit-signing-key.pem")]
        _run([*IL6_SNAPSHOT, *keygen], environment, state)
    # Production runs on a login that is a member of il6_app and owns nothing (docs/audit.md).
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(SERVICE_LOGIN_SQL)
    service_url = make_url(url).set(username=SERVICE_LOGIN).render_as_string(hide_password=False)
    serving = {**environment, "DATABASE_URL": service_url}
    return serving, create_api_key(serving, state)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("inf")


def verdicts(empty: Phase, filled: Phase, control: Phase | None, records: int) -> list[str]:
    """The comparison table, and per concurrency the filled store's p50 over the empty store's, within
    10% or not; with the control run, how far the empty store's own p50 moved over the run."""
    lines = comparison(empty, filled)
    for index, (before, after) in enumerate(zip(empty.stages, filled.stages, strict=True)):
        ratio = _ratio(after.p50_ms, before.p50_ms)
        within = "within" if ratio <= 1 + WITHIN else "NOT within"
        lines.append(
            f"p50 at {before.concurrency} connections, {records:,} records / empty store: "
            f"{after.p50_ms:.1f} / {before.p50_ms:.1f} ms = {ratio:.3f}: {within} {100 * WITHIN:.0f}%"
        )
        if control is not None:
            again = control.stages[index]
            lines.append(
                f"  the empty store again, after (control): p50 {again.p50_ms:.1f} ms, "
                f"{again.appends_per_s:.1f}/s: {_ratio(again.p50_ms, before.p50_ms):.3f} of the first; "
                f"{records:,} records / control: {_ratio(after.p50_ms, again.p50_ms):.3f}"
            )
    return lines


def alternation(pairs: list[tuple[Phase, Phase]], records: int) -> list[str]:
    """Per concurrency, the filled store's p50 over the control's in each pair of phases run one after
    the other, their median, and whether that is within 10%. Adjacent phases share the machine's state
    of the moment, so the host's drift over the run cancels out of each ratio, as it cannot between the
    first empty stage and the filled store's, most of an hour apart."""
    lines = []
    for index, stage in enumerate(pairs[0][0].stages):
        ratios = [
            _ratio(filled.stages[index].p50_ms, control.stages[index].p50_ms) for filled, control in pairs
        ]
        middle = statistics.median(ratios)
        within = "within" if middle <= 1 + WITHIN else "NOT within"
        lines.append(
            f"p50 at {stage.concurrency} connections, {records:,} records / control, "
            f"{len(pairs)} adjacent pairs: "
            f"{', '.join(f'{ratio:.3f}' for ratio in ratios)}; median {middle:.3f}: {within} "
            f"{100 * WITHIN:.0f}%"
        )
    return lines


def store_checks(bench: Bench, unbound: int, from_seq: int, verify_all: bool) -> Iterator[tuple[bool, str]]:
    """Every record bound to its key (but ``unbound``), and the chain intact from ``from_seq`` on (and
    over all of it with ``verify_all``): each check as it ends. A verification that fails to run (a
    timeout, a signal) is a failed check, not the end of the run."""
    with psycopg.connect(owner_url(bench.url), autocommit=True, connect_timeout=5) as owner:
        row = owner.execute(
            "SELECT (SELECT count(*) FROM assessment), (SELECT count(*) FROM idempotency_key)"
        ).fetchone()
    records, bound = (0, 0) if row is None else (int(row[0]), int(row[1]))
    expected = records - unbound
    yield (
        bound == expected,
        f"bindings: {bound:,} for {records:,} records: "
        f"{'OK' if bound == expected else 'MISMATCH'} (expected {expected:,})",
    )
    for start in [from_seq, *([1] if verify_all else [])]:
        command = f"il6 audit verify --from-seq {start}"
        started = time.perf_counter()
        try:
            output = run_il6(["audit", "verify", "--from-seq", str(start)], bench.serving, bench.state, 7200)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            yield False, f"{command}: did not finish: {str(error).strip()}"
            continue
        seconds = time.perf_counter() - started
        count = records - start + 1
        yield (
            output.startswith(f"intact: {count} records"),
            f"{command}: {output.strip()} ({seconds:.1f} s, {count / seconds:,.0f} records/s, the command's "
            "start included)",
        )


def run(args: argparse.Namespace, admin_url: str, wrk: str) -> int:
    """The stores' stages, the fill between the first two, the checks; 0 when every check passed."""
    audit_appends.READY_TIMEOUT_S = READY_TIMEOUT_S  # read by running_server at each start
    with state_directory(args.keep) as state:
        snapshot_code(state)
        code = code_digest(state)
        print(f"code: {', '.join(SNAPSHOT)} copied from {SOURCE}, sha256 {code}; the servers and il6 run it")
        print(f"before: {load()}", flush=True)
        with bench_database(admin_url, args.keep) as url:
            serving, api_key = provision(url, state, admin_url, args.pool_size)
            bench = Bench(
                wrk, args.workers, args.concurrency, args.duration, args.warmup, state, url, serving, api_key
            )
            empty = bench.phase("empty", 0)
            head = check_against_stored(url)
            print(
                f"the service's last record (seq {head.seq}) made again by the service's code and by "
                "substitution: every column and its binding as stored",
                flush=True,
            )
            total = max(args.rows, head.seq)
            done = fill_store(url, head, total, args)
            print(f"after the fill: {load()}", flush=True)
            filled = bench.phase("filled", total)
            phases = [empty, filled]
            if args.control:
                # Right after, to tell the machine's drift from the store's doing; the filled store waits.
                with fresh_database(admin_url, prefix=PREFIX) as control_url:
                    serving, api_key = provision(control_url, state, admin_url, args.pool_size, control=True)
                    again = replace(bench, url=control_url, serving=serving, api_key=api_key)
                    phases.append(again.phase("control", 0))
                    pairs = [(filled, phases[-1])]
                    # Then both stores in turn, the order swapped each round (control, filled; filled,
                    # control; ...), so that a drift of the machine weighs on neither store more.
                    for round_ in range(2, args.rounds + 1):
                        order = ["control", "filled"] if round_ % 2 == 0 else ["filled", "control"]
                        done_now: dict[str, Phase] = {}
                        for which in order:
                            last = pairs[-1][0 if which == "filled" else 1]
                            store = bench if which == "filled" else again
                            done_now[which] = store.phase(f"{which}-{round_}", last.rows_after)
                        phases += [done_now[which] for which in order]
                        pairs.append((done_now["filled"], done_now["control"]))
            print()
            for line in verdicts(empty, filled, phases[2] if len(phases) > 2 else None, total):
                print(line)
            if len(phases) > 2:
                for line in alternation(pairs, total):
                    print(line)
            checks = [phase.rows_ok() for phase in phases]
            for _, line in checks:
                print(line, flush=True)
            from_seq = max(1, total - args.verify_stretch + 1)
            unbound = 0 if args.bindings else done.rows
            for check in store_checks(bench, unbound, from_seq, args.verify_all):
                checks.append(check)
                print(check[1], flush=True)
            if args.keep:
                print(f"kept: database {make_url(url).database}; signing key, code and logs in {state}")
        now = code_digest(SOURCE)
        print(
            f"code in {SOURCE} now: sha256 {now} "
            + ("(as copied)" if now == code else "(edited during the run; the run used the copy)")
        )
        print(f"after: {load()}")
    return 0 if all(ok for ok, _ in checks) else 1


def _stop(signum: int, _frame: object) -> None:
    """SIGTERM ends the run as an exception would: the database is dropped, and the output says why."""
    raise SystemExit(f"stopped by {signal.Signals(signum).name}")


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="Records to fill to (10000000).")
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds per concurrency (15).")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[16, 64], help="Connections per stage (16 64)."
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="Unreported seconds first, per server (3).")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn --workers (1).")
    parser.add_argument("--pool-size", type=int, default=None, help="IL6_DB_POOL_SIZE (service default).")
    parser.add_argument("--chunk", type=int, default=100_000, help="Records per fill transaction (100000).")
    parser.add_argument(
        "--check-every",
        type=int,
        default=1000,
        help="Check every n-th filled record against the service's code (1000).",
    )
    parser.add_argument(
        "--no-bindings",
        dest="bindings",
        action="store_false",
        help="Fill no Idempotency-Key bindings (the service would have written one per record).",
    )
    parser.add_argument(
        "--verify-stretch",
        type=int,
        default=5000,
        help="Filled records verified before the measured ones (5000).",
    )
    parser.add_argument("--verify-all", action="store_true", help="Also verify the whole chain (slow).")
    parser.add_argument("--keep", action="store_true", help="Keep the database and the state directory.")
    parser.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="No control run (the empty store again, in a new database, after the filled store's stages).",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="With the control: this many rounds of the filled store's and the control's stages in turn, "
        "each round's order swapped, the filled store's p50 compared with the control's next to it (1).",
    )
    parser.add_argument("--admin-url", default=os.environ.get("TEST_POSTGRES_ADMIN_URL", DEFAULT_ADMIN_URL))
    args = parser.parse_args()
    if min(args.workers, args.chunk, args.check_every, args.verify_stretch, args.rounds) < 1:
        parser.error("--workers, --chunk, --check-every, --verify-stretch and --rounds must be at least 1")
    if args.rounds > 1 and not args.control:
        parser.error("--rounds compares the filled store with the control: not with --no-control")
    wrk = shutil.which("wrk")
    if wrk is None:
        parser.error("wrk is not installed (bash bench/ensure-wrk)")

    admin_url = make_url(args.admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    for fact in machine_facts(admin_url, wrk):
        print(fact)
    print(server_facts(args.workers))
    print(
        f"load generator: wrk; warm-up {args.warmup:g} s, then {args.duration:g} s per stage; "
        "service: IL6_RATE_LIMIT_PER_MINUTE=0; requests carry a bench API key (not shown)"
    )
    bindings = "one per record" if args.bindings else "none"
    print(
        f"fill: to {args.rows:,} records, {args.chunk:,} per transaction, binary COPY as the owner, without "
        f"{', '.join(RANDOM_UNIQUES)}, the foreign keys on assessment.id and {CHAIN_TRIGGER} (added back "
        f"after); Idempotency-Key bindings: {bindings}"
    )

    return run(args, admin_url, wrk)


if __name__ == "__main__":
    sys.exit(main())
