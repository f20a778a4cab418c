"""Audit chain verification speed (records/s) of the real service against chains of growing size.

A benchmark, not a test. The project's target is to verify at least 200,000 records per second. It creates
a database ``il6_bench_verify_<hex>``, migrates it (``il6 db upgrade``), makes a signing key (``il6 audit
keygen``), and fills the chain, a size at a time (``--records 10000 100000 200000`` fills to 10,000,
measures, adds 90,000, measures, and so on), with records the service's own code makes: each is the same
valid submission as bench/audit_appends.py's (``BODY_TEMPLATE``, a unique subject id and Idempotency-Key
each), read by the plain JSON intake (``parse_exact_json``, ``plain_submission``), decided by
``AssessmentService._new_assessment`` under the bundled classifier registry, and appended with
``AssessmentRepository.append`` in batches of ``--batch`` per transaction, through the service's engine,
sessions and unit of work (``create_engine_for``: a URL naming the database owner, acting as the
``il6_app`` role the settings set at connection start, as the service does). So the chain is real: every
hash, link and time is what the service writes, and the database's insert trigger checks every link.

At each size it times ``AuditService.verify()`` (built as app/main.py builds it, with the key made above),
best of ``--runs``, and checks the result is intact and checked every record. To show where the time goes
it also times, as many times, a pass that only reads the same batches and makes their records
(``uow.chain.entries()``, the batch size ``AuditService`` uses) and hashes nothing: ``verify - read`` is
the time in checking (each record's canonical JSON, SHA-256, the links and times). The two passes
alternate, so that a change in the machine's load touches both. No profiler: beside the wall clock, each
pass's CPU time (this process's; the rest of the wall clock it waited, for PostgreSQL or for a CPU) and
its time in garbage collection (``gc.callbacks``), which both passes pay.

At the largest size, once: ``il6 audit verify`` (the command line, a new process: interpreter start and
imports included), wall clock, with DATABASE_URL pointed at the bench database, and the same for the last
record alone (the command's fixed cost). Then, unless ``--no-breakdown``:

- ``AuditService.verify()`` again after ``gc.freeze()`` (as the service's start-up does, so what
  ``GET /v1/audit/verify`` pays; the command line does not freeze), and with the garbage collector off;
- ranges in parallel: ``il6 audit verify --from-seq A --to-seq B`` run in ``nproc`` processes at once over
  consecutive ranges. Each range's first record is checked against the stored hash of the record before it,
  which the neighbouring range checks as its last, so together they check what one run checks (without
  checkpoints). This needs no change to the service: it is how far the present code goes;
- each stage alone, on the first ``--sample`` records, best of ``--runs``, without garbage collection
  (measured above, apart), a batch of 2000 at a time as the verifier goes, with this process's CPU time:
  reading, the rows of each batch dropped once counted: the repository's read (SQLAlchemy, psycopg); the
  same query through psycopg directly, with its default loaders (JSONB decoded with ``json.loads``);
  in PostgreSQL's binary format; with JSONB left as text (not decoded); with uuid and timestamptz as text
  too; and with the request body hashed by PostgreSQL (``sha256()``) instead of sent. Checking, on rows
  already in memory: ``to_record``, ``canonical_json.dumps``, the standard library's C serialiser alone
  (what ``canonical_json`` calls once a record is found plain), ``sha256`` of the canonical bytes,
  ``sha256`` of the request body, ``datetime.fromisoformat`` (the verifier parses each record's time
  twice), ``json.loads`` of the two documents (psycopg's decoding, redone), and the whole
  ``ChainVerifier.feed`` loop.

After each fill the table is vacuumed and analysed (``VACUUM (ANALYZE)``, as the owner), so that the
measurements find the rows as a settled chain has them, and autovacuum, woken by the inserts, has nothing to
do while they run.

Nothing clinical is invented: every record is the one submission above, decided by the bundled classifier.
The database is dropped (WITH FORCE) at the end, whatever happens. Another process using the CPUs changes
every figure: the load average is printed before and after.

Run from the project root, with PostgreSQL reachable (TEST_POSTGRES_ADMIN_URL, as for the tests)::

    .venv/bin/python bench/verify_chain.py                          # 10,000, 100,000, 200,000 records
    .venv/bin/python bench/verify_chain.py --records 10000 50000 --runs 5
    .venv/bin/python bench/verify_chain.py --records 200000 --no-breakdown
"""

import argparse
import asyncio
import gc
import hashlib
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import psycopg
from audit_appends import fresh_database  # this directory's (scripts run from it)
from psycopg.types.string import TextLoader
from pydantic import SecretStr
from sqlalchemy import Table, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from stopwatch import Reading, Stopwatch  # this directory's

from app.api.exact_json import JSON_MEDIA_TYPE, parse_exact_json
from app.api.intake import plain_submission
from app.domain import canonical_json
from app.domain.access import SiteAccess
from app.domain.audit import ChainVerifier, record_hash, to_record
from app.domain.classifiers.registry import load_registry
from app.service.assessments import AssessmentService, Caller, RawRequest
from app.service.audit import AuditService
from app.service.chain_writer import ChainWriter
from app.service.checkpoints import CheckpointSigner, load_signing_key
from app.service.classifiers import ClassifierCatalog
from app.settings import Settings
from app.store.database import create_engine_for, create_session_factory
from app.store.models import Assessment
from app.store.repositories import NewAssessment
from app.store.unit_of_work import UnitOfWork

BIN = Path(sys.executable).parent
IL6 = BIN / "il6"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_PER_S = 200_000
"""The project's target: records verified per second."""

BODY_TEMPLATE = (
    '{"subject_id":"%s","site_id":"PIT",'
    '"il6":{"value":1.5,"unit":"pg/mL","comparator":"<","assay":"elecsys-il6"},'
    '"specimen":{"type":"serum","collected_at":"2026-11-20T09:30:00Z"}}'
)
"""bench/audit_appends.py's valid submission; %s is the subject id (also the Idempotency-Key)."""
CLIENT_ID = "bench-verify"
"""The caller the records name: an API key's name, as a key-authenticated request's record holds."""

UnitOfWorkFactory = Callable[[], UnitOfWork]
COLUMNS = [column.name for column in cast(Table, Assessment.__table__).c]
"""The columns ``AssessmentRepository.chain`` selects (the whole table), in its order."""


# --- the database ---


def cli_environment(database_url: str, state: Path) -> dict[str, str]:
    """The command line's environment: this one without IL6_ settings, pointed at the bench database."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("IL6_") and key != "DATABASE_URL"
    }
    return {
        **inherited,
        "DATABASE_URL": database_url,
        "IL6_ENVIRONMENT": "production",
        "IL6_SIGNING_KEY_FILE": str(state / "audit-signing-key.pem"),
        "IL6_CHECKPOINT_FILE": str(state / "audit-checkpoints.jsonl"),
    }


def run_cli(arguments: list[str], environment: dict[str, str], cwd: Path) -> str:
    """Runs ``il6`` with these arguments; its standard output. A failure raises with its output."""
    completed = subprocess.run(  # noqa: S603 - the project's own command line, no shell
        [str(IL6), *arguments], env=environment, cwd=cwd, capture_output=True, text=True, timeout=600
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"il6 {' '.join(arguments)} exited with {completed.returncode}:\n"
            f"{completed.stdout}{completed.stderr}"
        )
    return completed.stdout


def bench_settings(database_url: str, state: Path) -> Settings:
    """The settings the service would run on against the bench database (the role: ``il6_app``)."""
    return Settings(
        database_url=SecretStr(database_url),
        signing_key_file=state / "audit-signing-key.pem",
        checkpoint_file=None,
        checkpoint_interval_s=0,
    )


@asynccontextmanager
async def service_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine_for(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


# --- filling the chain with the service's own records ---


class Filler:
    """Makes each record as the service does for ``POST /v1/assessments`` and appends them in batches."""

    def __init__(self, unit_of_work: UnitOfWorkFactory, batch: int) -> None:
        self._registry = load_registry()
        # Only _new_assessment is used (reading the submission and deciding); the writer never runs.
        catalog = ClassifierCatalog(self._registry, unit_of_work, {})
        self._service = AssessmentService(catalog, unit_of_work, ChainWriter(unit_of_work))
        self._unit_of_work = unit_of_work
        self._batch = batch
        self._tag = f"v{secrets.token_hex(4)}"
        self.made = 0
        self.making_s = 0.0
        self.appending_s = 0.0

    def _new(self, number: int) -> NewAssessment:
        key = f"{self._tag}-{number}"
        body = (BODY_TEMPLATE % key).encode()
        submission = plain_submission(parse_exact_json(body))
        caller = Caller(CLIENT_ID, uuid.uuid4().hex, SiteAccess(None))
        version = self._registry.resolve(submission.classifier)
        return self._service._new_assessment(
            uuid.uuid4(), version, submission, RawRequest(body, JSON_MEDIA_TYPE), caller, key
        )

    async def fill_to(self, total: int) -> None:
        while self.made < total:
            count = min(self._batch, total - self.made)
            started = time.perf_counter()
            news = [self._new(self.made + i + 1) for i in range(count)]
            made = time.perf_counter()
            async with self._unit_of_work() as uow:
                appended = await uow.assessments.append(news)
                await uow.commit()
            self.appending_s += time.perf_counter() - made
            self.making_s += made - started
            if len(appended) != count:
                raise RuntimeError(f"appended {len(appended)} of {count} records")
            self.made += count


def settle(database_url: str) -> str:
    """``VACUUM (ANALYZE)`` the audit trail, as the owner: the rows just appended are then as a chain that
    has been there a while finds them (hint bits set, visibility map written, statistics taken), so that
    neither autovacuum, woken by the inserts, nor the first reader's writes land in the timings. What it
    did, and the table's size."""
    started = time.perf_counter()
    with psycopg.connect(owner_url(database_url), autocommit=True, connect_timeout=5) as owner:
        owner.execute("VACUUM (ANALYZE) assessment")
        row = owner.execute(
            "SELECT pg_size_pretty(pg_table_size('assessment')), "
            "pg_size_pretty(pg_indexes_size('assessment')), current_setting('shared_buffers')"
        ).fetchone()
    sizes = ("?", "?", "?") if row is None else row
    return (
        f"VACUUM (ANALYZE) assessment: {time.perf_counter() - started:.1f} s; table {sizes[0]} (TOAST "
        f"included), indexes {sizes[1]}; shared_buffers {sizes[2]}"
    )


# --- timing ---


@dataclass(frozen=True)
class Timed:
    """The best of several wall-clock timings; in that run, this process's CPU time (user + system: the
    rest of the wall clock it waited, for PostgreSQL or for a CPU) and its time in garbage collection."""

    best_s: float
    cpu_s: float
    gc_s: float
    runs_s: tuple[float, ...]

    def per_s(self, records: int) -> float:
        return records / self.best_s if self.best_s > 0 else 0.0

    def us_per(self, records: int) -> float:
        return 1e6 * self.best_s / records if records else 0.0

    def cpu_us_per(self, records: int) -> float:
        return 1e6 * self.cpu_s / records if records else 0.0

    @property
    def waiting_share(self) -> float:
        return max(0.0, 1 - self.cpu_s / self.best_s) if self.best_s > 0 else 0.0

    @property
    def gc_share(self) -> float:
        return self.gc_s / self.best_s if self.best_s > 0 else 0.0


def best_of(runs: Sequence[Reading]) -> Timed:
    wall, cpu, collecting = min(runs)
    return Timed(wall, cpu, collecting, tuple(run[0] for run in runs))


@contextmanager
def collector_off() -> Iterator[None]:
    """No garbage collection while a breakdown stage runs: its rows, all held in memory at once (as the
    verifier, a batch at a time, never holds them), would make each collection walk them all."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def read_only(unit_of_work: UnitOfWorkFactory, batch_size: int, to_seq: int | None = None) -> int:
    """What ``AuditService.verify`` reads, the same way (one transaction, keyset batches, each record made
    from its row and dropped), and no more."""
    rows = 0
    async with unit_of_work() as uow:
        async for batch in uow.chain.entries(to_seq=to_seq, batch_size=batch_size):
            rows += sum(1 for _ in batch)
    return rows


AUDIT_BATCH = 2000
"""``AuditService``'s default batch size, the one the service and the command line verify with."""


@dataclass(frozen=True)
class SizeResult:
    records: int
    verify: Timed
    read: Timed


async def measure_size(
    audit: AuditService, unit_of_work: UnitOfWorkFactory, records: int, runs: int
) -> SizeResult:
    """Verify and the read-only pass, alternating, ``runs`` times each."""
    verify_times: list[Reading] = []
    read_times: list[Reading] = []
    for _ in range(runs):
        with Stopwatch() as watch:
            verification = await audit.verify()
        verify_times.append(watch.reading)
        if not verification.intact or verification.checked != records:
            raise RuntimeError(
                f"verify: intact={verification.intact} checked={verification.checked}, expected {records}"
                f" ({verification.broken})"
            )
        with Stopwatch() as watch:
            read = await read_only(unit_of_work, AUDIT_BATCH)
        read_times.append(watch.reading)
        if read != records:
            raise RuntimeError(f"the read-only pass read {read} rows, expected {records}")
    return SizeResult(records, best_of(verify_times), best_of(read_times))


async def verify_collected(audit: AuditService, records: int, runs: int, how: str) -> Timed:
    """``AuditService.verify()`` with the garbage collector ``frozen`` (``gc.freeze()`` first, as the
    service's start-up does, app/main.py: what is alive then is never scanned again) or ``off``."""
    times: list[Reading] = []
    for _ in range(runs):
        gc.collect()
        if how == "frozen":
            gc.freeze()
        else:
            gc.disable()
        try:
            with Stopwatch() as watch:
                verification = await audit.verify()
        finally:
            gc.unfreeze()
            gc.enable()
        times.append(watch.reading)
        if not verification.intact or verification.checked != records:
            raise RuntimeError(f"verify ({how}): intact={verification.intact} checked={verification.checked}")
    return best_of(times)


# --- the breakdown: each stage alone ---


def owner_url(database_url: str) -> str:
    """The bench database's URL for psycopg itself (the owner, as the service's URL names it)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


ROWS_QUERY = "SELECT {columns} FROM assessment WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT %s"
BODY_HASHED = (
    "encode(sha256(convert_to(request_body, 'UTF8')), 'hex') = request_sha256 AS request_body_matches"
)


@dataclass(frozen=True)
class Read:
    """A timed read of the sample, and its rows from one more, untimed, read."""

    timed: Timed
    rows: list[Any]


async def timed_read(
    runs: int, read: Callable[[bool], Awaitable[tuple[int, list[Any]]]], sample: int
) -> Read:
    """``read(False)`` timed ``runs`` times, each batch dropped once counted, as the verifier drops it (and
    so without the cost of holding the whole sample: more memory each time); then ``read(True)``, untimed,
    for the rows."""
    times: list[Reading] = []
    for _ in range(runs):
        with collector_off(), Stopwatch() as watch:
            count, _ = await read(False)
        times.append(watch.reading)
        if count != sample:
            raise RuntimeError(f"read {count} rows of a sample of {sample}")
    _, rows = await read(True)
    return Read(best_of(times), rows)


def psycopg_reader(
    connection: psycopg.AsyncConnection[Any], to_seq: int, *, binary: bool = False, hash_body: bool = False
) -> Callable[[bool], Awaitable[tuple[int, list[Any]]]]:
    """The verifier's query through psycopg alone, on ``connection``: a read of seq 1..``to_seq`` in
    batches of ``AUDIT_BATCH``. ``binary``: rows in PostgreSQL's binary format; ``hash_body``: PostgreSQL
    checks each request body's SHA-256 and sends a boolean instead of the body."""
    columns = [BODY_HASHED if c == "request_body" and hash_body else c for c in COLUMNS]
    query = ROWS_QUERY.format(columns=", ".join(columns)).encode()
    seq_index = COLUMNS.index("seq")

    async def read(keep: bool) -> tuple[int, list[Any]]:
        count, rows, after = 0, list[Any](), 0
        async with connection.transaction(), connection.cursor(binary=binary) as cursor:
            while after < to_seq:
                await cursor.execute(query, (after, to_seq, AUDIT_BATCH))
                batch = await cursor.fetchall()
                if not batch:
                    break
                count += len(batch)
                if keep:
                    rows.extend(batch)
                after = batch[-1][seq_index]
        return count, rows

    return read


def service_reader(
    unit_of_work: UnitOfWorkFactory, to_seq: int
) -> Callable[[bool], Awaitable[tuple[int, list[Any]]]]:
    """The repository's read of seq 1..``to_seq`` (SQLAlchemy rows, which the check stages below use)."""

    async def read(keep: bool) -> tuple[int, list[Any]]:
        count, rows = 0, list[Any]()
        async with unit_of_work() as uow:
            async for batch in uow.assessments.chain(to_seq=to_seq, batch_size=AUDIT_BATCH):
                count += len(batch)
                if keep:
                    rows.extend(batch)
        return count, rows

    return read


@asynccontextmanager
async def psycopg_connection(
    url: str, as_text: Sequence[str] = ()
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A psycopg connection to the bench database as the service connects (role il6_app). ``as_text``:
    PostgreSQL types left as the text the server sends, not decoded (``jsonb``, ``uuid``, ...)."""
    async with await psycopg.AsyncConnection.connect(url, options="-c role=il6_app") as connection:
        for type_name in as_text:
            connection.adapters.register_loader(type_name, TextLoader)
        yield connection


def _stdlib_canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


CHECK_STAGES = (
    "to_record",
    "canonical_json.dumps",
    "stdlib C serialiser",
    "sha256 record",
    "sha256 body",
    "fromisoformat",
    "json.loads",
    "feed",
)


def check_stages(
    rows: Sequence[Mapping[str, Any]], text_rows: Sequence[Sequence[Any]], runs: int
) -> dict[str, Timed]:
    """Each stage of checking, alone, on rows in memory, a batch of ``AUDIT_BATCH`` at a time (each
    stage's output dropped with its batch, as the verifier drops it), best of ``runs`` totals."""
    totals: dict[str, list[Reading]] = {stage: [] for stage in CHECK_STAGES}
    input_index, decision_index = COLUMNS.index("input"), COLUMNS.index("decision")
    for _ in range(runs):
        run: dict[str, list[float]] = {stage: [0.0, 0.0, 0.0] for stage in CHECK_STAGES}

        def add(stage: str, watch: Stopwatch, run: dict[str, list[float]] = run) -> None:
            for i, value in enumerate(watch.reading):
                run[stage][i] += value

        verifier = ChainVerifier()
        with collector_off():
            for start in range(0, len(rows), AUDIT_BATCH):
                chunk, text_chunk = rows[start : start + AUDIT_BATCH], text_rows[start : start + AUDIT_BATCH]
                with Stopwatch() as watch:
                    records = [to_record(row) for row in chunk]
                add("to_record", watch)
                with Stopwatch() as watch:
                    blobs = [canonical_json.dumps(record) for record in records]
                add("canonical_json.dumps", watch)
                with Stopwatch() as watch:
                    stdlib_blobs = [_stdlib_canonical(record) for record in records]
                add("stdlib C serialiser", watch)
                with Stopwatch() as watch:
                    hashes = [hashlib.sha256(blob).hexdigest() for blob in blobs]
                add("sha256 record", watch)
                with Stopwatch() as watch:
                    bodies = [
                        hashlib.sha256(row["request_body"].encode("utf-8")).hexdigest() for row in chunk
                    ]
                add("sha256 body", watch)
                with Stopwatch() as watch:
                    for record in records:
                        datetime.fromisoformat(record["recorded_at"])
                add("fromisoformat", watch)
                with Stopwatch() as watch:
                    for text_row in text_chunk:
                        json.loads(text_row[input_index])
                        json.loads(text_row[decision_index])
                add("json.loads", watch)
                with Stopwatch() as watch:
                    for row in chunk:
                        verifier.feed(to_record(row), row["hash"], row["request_body"])
                add("feed", watch)
                if (
                    stdlib_blobs != blobs
                    or hashes != [row["hash"] for row in chunk]
                    or bodies != [row["request_sha256"] for row in chunk]
                    or record_hash(records[0]) != hashes[0]
                ):
                    raise RuntimeError("a stage's output differs from the service's (or the stored hashes)")
        verification = verifier.finish()
        if not verification.intact or verification.checked != len(rows):
            raise RuntimeError(f"the sample does not verify: {verification}")
        for stage in CHECK_STAGES:
            wall, cpu, collecting = run[stage]
            totals[stage].append((wall, cpu, collecting))
    return {stage: best_of(readings) for stage, readings in totals.items()}


def _parallel_ranges(total: int, parts: int) -> list[tuple[int, int]]:
    step = -(-total // parts)
    return [(start, min(start + step - 1, total)) for start in range(1, total + 1, step)]


def parallel_cli_verify(total: int, parts: int, environment: dict[str, str], cwd: Path) -> float:
    """``il6 audit verify`` over ``parts`` consecutive ranges at once; wall clock. Each must say intact."""
    started = time.perf_counter()
    processes = [
        subprocess.Popen(  # noqa: S603 - the project's own command line, no shell
            [str(IL6), "audit", "verify", "--from-seq", str(first), "--to-seq", str(last)],
            env=environment,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for first, last in _parallel_ranges(total, parts)
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    elapsed = time.perf_counter() - started
    for process, (out, err) in zip(processes, outputs, strict=True):
        if process.returncode != 0 or not out.startswith("intact:"):
            raise RuntimeError(f"a range did not verify ({process.returncode}): {out}{err}")
    return elapsed


def _line(label: str, timed: Timed, records: int, note: str = "") -> str:
    worst = 1e6 * max(timed.runs_s) / records if records else 0.0
    return (
        f"  {label:<56} {timed.us_per(records):>7.2f} {timed.per_s(records):>11,.0f} "
        f"{timed.cpu_us_per(records):>7.2f} {worst:>7.2f}  {note}"
    ).rstrip()


async def breakdown(
    unit_of_work: UnitOfWorkFactory,
    database_url: str,
    sample: int,
    runs: int,
    verify: Timed,
    verified: int,
) -> list[str]:
    url = owner_url(database_url)
    lines = [
        f"breakdown on seq 1..{sample}, best of {runs} each:",
        f"  {'stage':<56} {'µs/rec':>7} {'records/s':>11} {'cpu µs':>7} {'worst':>7}",
    ]

    # Reading.
    service = await timed_read(runs, service_reader(unit_of_work, sample), sample)
    read_lines = [("AssessmentRepository.chain (SQLAlchemy)", service.timed)]
    variants: list[tuple[str, Sequence[str], bool, bool]] = [
        ("psycopg alone, its default loaders (JSONB decoded)", (), False, False),
        ("psycopg alone, binary format (JSONB decoded)", (), True, False),
        ("psycopg alone, JSONB as text (not decoded)", ("jsonb",), False, False),
        ("psycopg alone, JSONB, uuid, timestamptz as text", ("jsonb", "uuid", "timestamptz"), False, False),
        ("psycopg alone, JSONB as text, body sha256 in PostgreSQL", ("jsonb",), False, True),
    ]
    text_rows: list[Any] = []
    for label, as_text, binary, hash_body in variants:
        async with psycopg_connection(url, as_text) as connection:
            read = await timed_read(
                runs, psycopg_reader(connection, sample, binary=binary, hash_body=hash_body), sample
            )
        read_lines.append((label, read.timed))
        if hash_body and not all(row[COLUMNS.index("request_body")] is True for row in read.rows):
            raise RuntimeError("PostgreSQL's sha256 of a request body differs from its request_sha256")
        if as_text == ("jsonb",) and not hash_body:
            text_rows = read.rows
    lines.append(
        f"read (one transaction, keyset batches of {AUDIT_BATCH}, rows dropped once counted; cpu: this "
        "process, the rest waiting):"
    )
    lines += [_line(label, timed, sample) for label, timed in read_lines]

    # Checking, on rows in memory.
    rows = cast(Sequence[Mapping[str, Any]], service.rows)
    stages = check_stages(rows, text_rows, runs)
    record_sizes = sorted(len(canonical_json.dumps(to_record(row))) for row in rows[:1000])
    body_sizes = sorted(len(row["request_body"]) for row in rows[:1000])
    parts_us = sum(
        stages[stage].us_per(sample)
        for stage in ("to_record", "canonical_json.dumps", "sha256 record", "sha256 body")
    ) + 2 * stages["fromisoformat"].us_per(sample)
    feed = stages["feed"]
    lines += [
        f"check (rows in memory, batches of {AUDIT_BATCH}; canonical record median "
        f"{record_sizes[len(record_sizes) // 2]} bytes, request body median "
        f"{body_sizes[len(body_sizes) // 2]} bytes):",
        _line("to_record", stages["to_record"], sample),
        _line("canonical_json.dumps", stages["canonical_json.dumps"], sample),
        _line(
            "  of which the stdlib C serialiser alone",
            stages["stdlib C serialiser"],
            sample,
            "(the rest: the plain-check)",
        ),
        _line("sha256 of the canonical record", stages["sha256 record"], sample),
        _line("sha256 of the request body (encode + hash)", stages["sha256 body"], sample),
        _line("datetime.fromisoformat (the verifier parses twice)", stages["fromisoformat"], sample),
        _line("ChainVerifier.feed(to_record(row), ...): all of it", feed, sample),
        f"  {'  the parts above (fromisoformat twice); the rest of feed':<56} {parts_us:>7.2f} "
        f"{'':>11} {'':>7} {'':>7}  rest {feed.us_per(sample) - parts_us:.2f} µs",
        _line("json.loads of input and decision (psycopg's decoding)", stages["json.loads"], sample),
        _line(f"AuditService.verify() at {verified} records, for comparison", verify, verified),
        f"  {'the target, for comparison':<56} {1e6 / TARGET_PER_S:>7.2f} {TARGET_PER_S:>11,}",
    ]
    return lines


# --- the report ---


def machine_facts(admin_url: str) -> list[str]:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        row = admin.execute("SHOW server_version").fetchone()
    postgres = "?" if row is None else str(row[0])

    def installed(distribution: str) -> str:
        try:
            return f"{distribution} {metadata.version(distribution)}"
        except metadata.PackageNotFoundError:
            return f"no {distribution}"

    return [
        f"date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"nproc: {os.cpu_count()}",
        f"machine: {platform.machine()} {platform.platform()}",
        f"python: {platform.python_version()}",
        f"postgresql: {postgres}",
        f"driver: {installed('psycopg')} (libpq wrapper: {psycopg.pq.__impl__}), {installed('SQLAlchemy')}",
    ]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min; {os.cpu_count()} CPUs)"


SIZE_NOTE = (
    "check = verify - read; wait: the share of the wall clock this process was off the CPU (waiting for "
    "PostgreSQL, or for a CPU); gc: the share in garbage collection; v/r: verify/read"
)
SIZE_HEADER = (
    f"{'records':>8} {'verify s':>9} {'verify/s':>10} {'read s':>8} {'read/s':>10} "
    f"{'check s':>8} {'read %':>7} {'check %':>8} {'of target':>10} {'wait v/r':>12} {'gc v/r':>12}"
)


def size_line(result: SizeResult) -> str:
    n, verify, read = result.records, result.verify.best_s, result.read.best_s
    check = verify - read
    return (
        f"{n:>8} {verify:>9.3f} {result.verify.per_s(n):>10,.0f} {read:>8.3f} {result.read.per_s(n):>10,.0f} "
        f"{check:>8.3f} {100 * read / verify:>6.1f}% {100 * check / verify:>7.1f}% "
        f"{100 * result.verify.per_s(n) / TARGET_PER_S:>9.1f}% "
        f"{100 * result.verify.waiting_share:>6.1f}%/{100 * result.read.waiting_share:>4.1f}% "
        f"{100 * result.verify.gc_share:>6.1f}%/{100 * result.read.gc_share:>4.1f}%"
    )


async def run(args: argparse.Namespace, database_url: str, state: Path) -> list[SizeResult]:
    settings = bench_settings(database_url, state)
    async with service_engine(settings) as engine:
        unit_of_work = partial(UnitOfWork, create_session_factory(engine))
        signer = CheckpointSigner(load_signing_key(settings.signing_key_file, create=False))
        audit = AuditService(unit_of_work, signer)
        filler = Filler(unit_of_work, args.batch)
        results: list[SizeResult] = []
        for size in args.records:
            before = filler.made
            started = time.perf_counter()
            await filler.fill_to(size)
            elapsed = time.perf_counter() - started
            added = filler.made - before
            print(
                f"filled {before}..{size}: {added} records in {elapsed:.1f} s ({added / elapsed:,.0f}/s; "
                f"so far making {filler.making_s:.1f} s, appending and committing "
                f"{filler.appending_s:.1f} s)",
                flush=True,
            )
            print(f"  {settle(database_url)}", flush=True)
            result = await measure_size(audit, unit_of_work, size, args.runs)
            results.append(result)
            print(f"  {size_line(result).strip()}  (every verify: intact, checked {size})", flush=True)
        print()
        print(SIZE_HEADER)
        for result in results:
            print(size_line(result))
        print(SIZE_NOTE)
        largest = results[-1]
        environment = cli_environment(database_url, state)
        started = time.perf_counter()
        output = run_cli(["audit", "verify"], environment, state)
        cli_s = time.perf_counter() - started
        if not output.startswith(f"intact: {largest.records} records"):
            raise RuntimeError(f"il6 audit verify: {output}")
        print(
            f"il6 audit verify ({largest.records} records, one run, wall clock, process start included): "
            f"{cli_s:.2f} s, {largest.records / cli_s:,.0f} records/s"
        )
        last = str(largest.records)
        started = time.perf_counter()
        run_cli(["audit", "verify", "--from-seq", last, "--to-seq", last], environment, state)
        print(
            f"il6 audit verify --from-seq {last} --to-seq {last} (one record: the command's fixed cost): "
            f"{time.perf_counter() - started:.2f} s",
            flush=True,
        )
        if args.breakdown:
            for how, label in (
                ("frozen", "after gc.freeze(), as the service's start-up does"),
                ("off", "with the garbage collector off"),
            ):
                timed = await verify_collected(audit, largest.records, args.runs, how)
                print(
                    f"AuditService.verify() at {largest.records} records {label}: {timed.best_s:.3f} s, "
                    f"{timed.per_s(largest.records):,.0f} records/s (gc {100 * timed.gc_share:.1f}%)",
                    flush=True,
                )
            parts = os.cpu_count() or 1
            parallel_s = parallel_cli_verify(largest.records, parts, environment, state)
            print(
                f"il6 audit verify --from-seq/--to-seq, {parts} ranges in {parts} processes at once "
                f"(together the whole chain): {parallel_s:.2f} s, {largest.records / parallel_s:,.0f} "
                "records/s",
                flush=True,
            )
            print()
            sample = min(args.sample, largest.records)
            lines = await breakdown(
                unit_of_work, database_url, sample, args.runs, largest.verify, largest.records
            )
            for line in lines:
                print(line)
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 200_000],
        help="Chain sizes, filled in turn and measured at each (10000 100000 200000).",
    )
    parser.add_argument("--batch", type=int, default=1000, help="Records appended per transaction (1000).")
    parser.add_argument("--runs", type=int, default=3, help="Timed runs per measurement, best kept (3).")
    parser.add_argument(
        "--sample", type=int, default=50_000, help="Records the breakdown reads and checks (50000)."
    )
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    parser.add_argument("--admin-url", default=os.environ.get("TEST_POSTGRES_ADMIN_URL", DEFAULT_ADMIN_URL))
    args = parser.parse_args()
    if sorted(set(args.records)) != args.records or args.records[0] < 1:
        parser.error("--records: positive sizes, ascending")
    if args.batch < 1 or args.runs < 1 or args.sample < 1:
        parser.error("--batch, --runs and --sample must be at least 1")

    admin_url = make_url(args.admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    for fact in machine_facts(admin_url):
        print(fact)
    print(f"before: {load()}")
    print(
        f"records: the submission of bench/audit_appends.py, decided by the service, appended "
        f"{args.batch} per transaction; verify: AuditService.verify(), batches of {AUDIT_BATCH}, "
        f"best of {args.runs}; target {TARGET_PER_S:,} records/s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="il6-bench-verify-") as scratch_name:
        state = Path(scratch_name)
        with fresh_database(admin_url, prefix="il6_bench_verify_") as url:
            environment = cli_environment(url, state)
            run_cli(["db", "upgrade"], environment, state)
            run_cli(["audit", "keygen", "--output", str(state / "audit-signing-key.pem")], environment, state)
            asyncio.run(run(args, url, state))
    print(f"after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
