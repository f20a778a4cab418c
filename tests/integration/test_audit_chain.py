"""The audit chain on both backends: append-only storage, links and hashes, verification, signed
checkpoints, export and the offline checks of the command line.

The session's database is shared, so every test works relative to the chain head it finds. Tests that
tamper do so as the database owner inside ``tampering``, which puts every row back exactly afterwards;
their verifications start at the test's own records, so that damage left by another test cannot move the
break they pin-point. Only the tests that report the whole chain intact depend on the rest of the chain.
"""

import asyncio
import base64
import csv
import hashlib
import io
import itertools
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import SecretStr
from sqlalchemy import Connection, Engine, Table, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError, ProgrammingError
from typer.testing import CliRunner

from app.cli import app as cli
from app.cli_verify import RangesInProcesses
from app.domain.audit import GENESIS_HASH, RECORD_FIELDS, Break, record_hash, to_record
from app.service.audit import AuditService
from app.service.checkpoints import CheckpointSigner, load_signing_key
from app.settings import Environment, Settings
from app.store.database import create_engine_for, create_session_factory
from app.store.models import Assessment
from app.store.unit_of_work import StoreUnavailable, UnitOfWork
from tests.factories import assessment_body
from tests.integration.conftest import behind_the_service, caller_of, key_headers

ASSESSMENT = cast(Table, Assessment.__table__)
EXPORT_COLUMNS = [*RECORD_FIELDS, "hash", "request_body"]
CHECKPOINT_STATEMENT = ("log", "seq", "hash", "issued_at", "key_id")
JSON_HEADERS = {"content-type": "application/json"}
IL6 = Path(sys.executable).parent / "il6"
CANONICAL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
runner = CliRunner()

Row = dict[str, Any]


# --- deciding -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    """A decision as posted: the exact request body and the service's answer."""

    body: str
    response: httpx.Response

    @property
    def out(self) -> dict[str, Any]:
        out: dict[str, Any] = self.response.json()
        return out

    @property
    def audit(self) -> dict[str, Any]:
        audit: dict[str, Any] = self.out["audit"]
        return audit

    @property
    def seq(self) -> int:
        return int(self.audit["seq"])


async def decide(
    client: httpx.AsyncClient,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
    **body_fields: Any,
) -> Decided:
    """POST a decision built by the factory (plus ``extra`` fields); it must be recorded."""
    body = json.dumps({**assessment_body(**body_fields), **(extra or {})})
    response = await client.post("/v1/assessments", content=body, headers={**JSON_HEADERS, **(headers or {})})
    assert response.status_code == 201, response.text
    return Decided(body, response)


async def decide_three(client: httpx.AsyncClient) -> list[Decided]:
    """Three consecutive decisions: a low IL6 result, a high one, and one with no site."""
    return [
        await decide(client),
        await decide(client, value=40, comparator=None),
        await decide(client, site_id=None),
    ]


# --- reading the store ----------------------------------------------------------------------------------


def head(db: Engine) -> tuple[int, str]:
    """The newest record's seq and hash, or the empty chain's."""
    with db.connect() as connection:
        row = connection.execute(
            select(ASSESSMENT.c.seq, ASSESSMENT.c.hash).order_by(ASSESSMENT.c.seq.desc()).limit(1)
        ).first()
    return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))


def rows(db: Engine, from_seq: int, to_seq: int | None = None) -> list[Row]:
    """Stored rows as the service reads them (UUIDs, aware times, JSON documents)."""
    statement = select(ASSESSMENT).where(ASSESSMENT.c.seq >= from_seq).order_by(ASSESSMENT.c.seq)
    if to_seq is not None:
        statement = statement.where(ASSESSMENT.c.seq <= to_seq)
    with db.connect() as connection:
        return [dict(row) for row in connection.execute(statement).mappings()]


def raw_rows(db: Engine, from_seq: int) -> list[Row]:
    """Stored rows as the database hands them back, without the service's column types."""
    with db.connect() as connection:
        result = connection.execute(
            text("SELECT * FROM assessment WHERE seq >= :s ORDER BY seq"), {"s": from_seq}
        )
        return [dict(row) for row in result.mappings()]


def is_postgresql(db: Engine) -> bool:
    return db.dialect.name == "postgresql"


# --- tampering as the owner -----------------------------------------------------------------------------


@contextmanager
def tampering(db: Engine, from_seq: int) -> Iterator[None]:
    """Keep the rows from ``from_seq`` on; afterwards put them back exactly (forged rows removed)."""
    kept, typed = raw_rows(db, from_seq), rows(db, from_seq)
    try:
        yield
    finally:
        with behind_the_service(db) as connection:
            connection.execute(delete(ASSESSMENT).where(ASSESSMENT.c.seq >= from_seq))
            connection.execute(insert(ASSESSMENT), typed)
        assert raw_rows(db, from_seq) == kept


def set_values(connection: Connection, at: int, /, **values: Any) -> None:
    """Change the record at seq ``at``."""
    connection.execute(update(ASSESSMENT).where(ASSESSMENT.c.seq == at).values(**values))


def another_status(status: str) -> str:
    return "ineligible" if status != "ineligible" else "eligible"


def rehash(connection: Connection, from_seq: int) -> None:
    """Recompute every link from ``from_seq`` on, as an owner rewriting history would."""
    stored = (
        connection.execute(select(ASSESSMENT).where(ASSESSMENT.c.seq >= from_seq).order_by(ASSESSMENT.c.seq))
        .mappings()
        .all()
    )
    previous = stored[0]["prev_hash"]
    for row in stored:
        digest = record_hash(to_record({**row, "prev_hash": previous}))
        set_values(connection, row["seq"], prev_hash=previous, hash=digest)
        previous = digest


def forge_after(connection: Connection, last: Row, *, prev_hash: str, hash_: str | None = None) -> int:
    """Append a made-up record after ``last``; its hash is computed over it unless given."""
    forged = {
        **last,
        "seq": last["seq"] + 1,
        "id": uuid.uuid4(),
        "prev_hash": prev_hash,
        "supersedes": None,
        "eligibility_status": another_status(last["eligibility_status"]),
    }
    forged["hash"] = hash_ or record_hash(to_record(forged))
    connection.execute(insert(ASSESSMENT), forged)
    return int(forged["seq"])


# --- the audit endpoints and the command line -----------------------------------------------------------


async def verify(client: httpx.AsyncClient, **params: int) -> dict[str, Any]:
    response = await client.get("/v1/audit/verify", params=params)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def verify_against(
    client: httpx.AsyncClient, checkpoints: list[dict[str, Any]], **bounds: int
) -> httpx.Response:
    return await client.post("/v1/audit/verify", json={**bounds, "checkpoints": checkpoints})


async def checkpoint(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/v1/audit/checkpoint")
    assert response.status_code == 200, response.text
    kept: dict[str, Any] = response.json()
    return kept


def broken(report: Mapping[str, Any]) -> tuple[int, str]:
    assert report["intact"] is False, report
    return report["broken"]["seq"], report["broken"]["reason"]


def assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"/problems/{slug}"
    assert response.json()["status"] == status


async def il6(database_url: str, *args: str) -> tuple[int, str]:
    """Run the installed ``il6`` command against the test database; its exit status and output."""
    environment = {key: value for key, value in os.environ.items() if key != "IL6_DATABASE_URL"}
    process = await asyncio.create_subprocess_exec(
        str(IL6),
        *args,
        env={**environment, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


def verify_export(
    directory: Path,
    export: bytes,
    kept: Mapping[str, Any] | None = None,
    public_key: str | None = None,
    *options: str,
) -> tuple[int, str]:
    """``il6 audit verify-export`` on an export (and a checkpoint) written to files, with ``options``."""
    export_file = directory / "export"
    export_file.write_bytes(export)
    arguments = ["audit", "verify-export", str(export_file)]
    if kept is not None:
        checkpoint_file = directory / "checkpoint.json"
        checkpoint_file.write_text(json.dumps(kept), encoding="utf-8")
        arguments += ["--checkpoint", str(checkpoint_file)]
    if public_key is not None:
        arguments += ["--public-key", public_key]
    result = runner.invoke(cli, [*arguments, *options])
    return result.exit_code, result.output


async def export(client: httpx.AsyncClient, **params: str | int) -> httpx.Response:
    response = await client.get("/v1/audit/export", params=params)
    assert response.status_code == 200, response.text
    return response


def ndjson_records(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line) for line in response.text.splitlines()]


def csv_rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.headers["content-type"].split(";")[0] == "text/csv"
    reader = csv.DictReader(io.StringIO(response.text, newline=""))
    assert reader.fieldnames == EXPORT_COLUMNS
    return list(reader)


def exported_seqs(response: httpx.Response, format_: str) -> list[int]:
    records = ndjson_records(response) if format_ == "ndjson" else csv_rows(response)
    return [int(record["seq"]) for record in records]


# --- 1. append-only, enforced by the database -----------------------------------------------------------

STATEMENTS = {
    "UPDATE": "UPDATE assessment SET eligibility_status = 'indeterminate' WHERE seq = :seq",
    "DELETE": "DELETE FROM assessment WHERE seq = :seq",
    "DELETE-ALL": "DELETE FROM assessment",
    # Every table that references the trail, or PostgreSQL refuses for that reason before any trigger.
    "TRUNCATE": "TRUNCATE assessment, idempotency_key, shadow_decision",
}


def attempt(db: Engine, statement: str, seq: int, role: str | None = None) -> None:
    """Run one statement (as ``role``, when given) in a transaction that is never committed."""
    with db.connect() as connection:
        if role is not None:
            connection.execute(text(f"SET LOCAL ROLE {role}"))
        connection.execute(text(statement), {"seq": seq} if ":seq" in statement else {})
        connection.rollback()


@pytest.mark.parametrize(
    ("database_url", "operation"),
    [
        *(("postgresql", operation) for operation in STATEMENTS),
        # SQLite has no TRUNCATE: DELETE without WHERE is its form of it.
        *(("sqlite", operation) for operation in STATEMENTS if operation != "TRUNCATE"),
    ],
    indirect=["database_url"],
)
async def test_the_database_refuses_to_change_or_remove_records(
    client: httpx.AsyncClient, db: Engine, operation: str
) -> None:
    seq = (await decide(client)).seq
    before = raw_rows(db, 1)
    expected = IntegrityError if not is_postgresql(db) else ProgrammingError

    with pytest.raises(expected) as refused:
        attempt(db, STATEMENTS[operation], seq)

    verb = operation.split("-")[0]
    assert f"assessment is an append-only audit trail: {verb} refused" in str(refused.value.orig)
    if is_postgresql(db):
        assert isinstance(refused.value.orig, psycopg.errors.InsufficientPrivilege)
    assert raw_rows(db, 1) == before


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has no roles
@pytest.mark.parametrize("operation", ["UPDATE", "DELETE", "TRUNCATE"])
async def test_the_service_role_may_only_read_and_append(
    client: httpx.AsyncClient, db: Engine, operation: str
) -> None:
    seq = (await decide(client)).seq
    before = raw_rows(db, 1)

    with pytest.raises(ProgrammingError) as refused:
        attempt(db, STATEMENTS[operation], seq, role="il6_app")

    assert isinstance(refused.value.orig, psycopg.errors.InsufficientPrivilege)
    assert "permission denied for table assessment" in str(refused.value.orig)
    assert raw_rows(db, 1) == before
    with db.connect() as connection:
        granted = connection.execute(
            text(
                "SELECT privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee = 'il6_app' AND table_name = 'assessment' ORDER BY privilege_type"
            )
        ).scalars()
        assert list(granted) == ["INSERT", "SELECT"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_service_acts_as_the_audit_role(database_url: str) -> None:
    # The URL names the superuser; the connection still acts with il6_app's privileges only.
    engine = create_engine_for(Settings(database_url=SecretStr(database_url), environment=Environment.TEST))
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT current_user"))).scalar_one() == "il6_app"
    finally:
        await engine.dispose()


# --- 2. the chain as written ----------------------------------------------------------------------------


async def test_consecutive_decisions_link_and_hash_as_stored(client: httpx.AsyncClient, db: Engine) -> None:
    start_seq, start_hash = head(db)

    decided = await decide_three(client)

    assert [d.seq for d in decided] == [start_seq + 1, start_seq + 2, start_seq + 3]
    assert decided[0].audit["prev_hash"] == start_hash
    for earlier, later in itertools.pairwise(decided):
        assert later.audit["prev_hash"] == earlier.audit["hash"]
    stored = rows(db, start_seq + 1)
    assert [row["seq"] for row in stored] == [d.seq for d in decided]
    for row, d in zip(stored, decided, strict=True):
        assert record_hash(to_record(row)) == row["hash"] == d.audit["hash"]
        assert row["prev_hash"] == d.audit["prev_hash"]
        assert row["request_body"] == d.body
        assert row["request_sha256"] == hashlib.sha256(d.body.encode()).hexdigest()
        assert datetime.fromisoformat(d.out["recorded_at"]) == row["recorded_at"]
    times = [row["recorded_at"] for row in rows(db, max(start_seq, 1))]
    assert times == sorted(times)


async def test_the_record_names_the_authenticated_caller_and_the_request_sent(
    client: httpx.AsyncClient, db: Engine
) -> None:
    caller = f"lab-system.{uuid.uuid4().hex[:8]}"
    headers = {**await key_headers(client, name=caller), "X-Request-ID": "req.42-abc"}

    decided = await decide(client, headers=headers)

    assert decided.audit["client_id"] == caller
    assert decided.audit["request_id"] == "req.42-abc"
    assert decided.response.headers["x-request-id"] == "req.42-abc"
    row = rows(db, decided.seq, decided.seq)[0]
    assert (row["client_id"], row["request_id"]) == (caller, "req.42-abc")


async def test_a_self_asserted_client_id_is_not_what_the_record_names(
    client: httpx.AsyncClient, db: Engine
) -> None:
    decided = await decide(client, headers={"X-Client-ID": "someone-else"})

    assert decided.audit["client_id"] == await caller_of(client)
    assert rows(db, decided.seq, decided.seq)[0]["client_id"] != "someone-else"


@pytest.mark.parametrize("request_id", [None, "not a safe id!"])
async def test_without_a_usable_request_id_the_record_names_the_issued_one(
    client: httpx.AsyncClient, db: Engine, request_id: str | None
) -> None:
    decided = await decide(client, headers={} if request_id is None else {"X-Request-ID": request_id})

    issued = decided.response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", issued)
    assert decided.audit["request_id"] == issued
    row = rows(db, decided.seq, decided.seq)[0]
    assert row["request_id"] == issued


# --- 3. verification ------------------------------------------------------------------------------------


async def test_verify_reports_the_whole_chain_intact(client: httpx.AsyncClient, db: Engine) -> None:
    await decide(client)
    head_seq, head_hash = head(db)

    report = await verify(client)

    assert report == {
        "intact": True,
        "checked": head_seq,
        "first_seq": 1,
        "last_seq": head_seq,
        "last_hash": head_hash,
        "checkpoints_checked": 0,
        "broken": None,
    }


async def test_verify_checks_just_the_range_asked(client: httpx.AsyncClient) -> None:
    first, second, _ = await decide_three(client)

    report = await verify(client, from_seq=first.seq, to_seq=second.seq)

    assert report["intact"] is True
    assert report["checked"] == 2
    assert (report["first_seq"], report["last_seq"]) == (first.seq, second.seq)
    assert report["last_hash"] == second.audit["hash"]


async def test_a_range_past_the_end_has_nothing_to_check(client: httpx.AsyncClient) -> None:
    head = (await checkpoint(client))["seq"]

    for start in (head + 1, head + 2):
        report = await verify(client, from_seq=start)
        assert report["intact"] is True, report
        assert report["checked"] == 0


@pytest.mark.parametrize("tamper", [None, "edit the fourth", "delete the second"])
async def test_ranges_verified_at_once_say_what_one_pass_says(
    client: httpx.AsyncClient,
    db: Engine,
    database_url: str,
    tmp_path: Path,
    tamper: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three ranges of two records checked at once, each on its own connection, joined: the same outcome
    as one pass, whether this process checks them or worker processes do (``il6 audit verify --jobs``);
    where a range has no record before it (deleted), one pass pinpoints the gap."""
    first = (await decide_three(client))[0].seq
    await decide_three(client)
    engine = create_engine_for(Settings(database_url=SecretStr(database_url)))
    signer = CheckpointSigner(load_signing_key(tmp_path / "key.pem", create=True))
    unit_of_work = partial(UnitOfWork, create_session_factory(engine, read_only=True))
    at_once = AuditService(unit_of_work, signer, parallel=3, min_range=2)
    one_pass = AuditService(unit_of_work, signer, parallel=1)
    monkeypatch.setenv("DATABASE_URL", database_url)  # the workers' database, as the command line's
    workers = RangesInProcesses(3)
    in_workers = AuditService(unit_of_work, signer, parallel=3, min_range=2, range_check=workers)
    try:
        with tampering(db, first):
            with behind_the_service(db) as connection:
                if tamper == "edit the fourth":
                    set_values(connection, first + 3, risk_group=None)
                elif tamper == "delete the second":
                    connection.execute(delete(ASSESSMENT).where(ASSESSMENT.c.seq == first + 1))
            outcome = await at_once.verify(from_seq=first)
            outcome_in_workers = await in_workers.verify(from_seq=first)
            expected = await one_pass.verify(from_seq=first)
    finally:
        workers.close()
        await engine.dispose()

    assert outcome == expected
    assert outcome_in_workers == expected
    if tamper is None:
        assert (outcome.intact, outcome.checked, outcome.last_seq) == (True, 6, first + 5)
    else:
        assert outcome.broken is not None
        assert outcome.broken.seq == (first + 3 if tamper == "edit the fourth" else first + 2)


async def test_only_checkpoints_in_the_range_are_counted(client: httpx.AsyncClient) -> None:
    kept = await checkpoint(client)
    later = await decide(client)

    response = await verify_against(client, [kept], from_seq=later.seq)

    assert response.json()["intact"] is True
    assert kept["seq"] < later.seq
    assert response.json()["checkpoints_checked"] == 0  # the checkpoint is before the range


Tamper = Callable[[Connection, list[Row]], tuple[int, Break]]
"""Alters the given three consecutive records (the newest is the head); returns where the break shows."""


def edit_status(connection: Connection, three: list[Row]) -> tuple[int, Break]:
    middle = three[1]
    set_values(connection, middle["seq"], eligibility_status=another_status(middle["eligibility_status"]))
    return middle["seq"], Break.HASH


def edit_input(connection: Connection, three: list[Row]) -> tuple[int, Break]:
    middle = three[1]
    edited = json.loads(json.dumps(middle["input"]))
    edited["il6"]["value"] = "99"
    set_values(connection, middle["seq"], input=edited)
    return middle["seq"], Break.HASH


def put_a_huge_integer_in_the_input(connection: Connection, three: list[Row]) -> tuple[int, Break]:
    """An integer beyond 64 bits, which orjson reads as a float: no record holds one (RFC 8785 writes
    integers within 2**53), so it must fail the hash check like any other edit."""
    middle = three[1]
    edited = json.loads(json.dumps(middle["input"]))
    edited["il6"]["value"] = 10**25 + 1
    set_values(connection, middle["seq"], input=edited)
    return middle["seq"], Break.HASH


def delete_middle(connection: Connection, three: list[Row]) -> tuple[int, Break]:
    connection.execute(delete(ASSESSMENT).where(ASSESSMENT.c.seq == three[1]["seq"]))
    return three[2]["seq"], Break.SEQUENCE_GAP


def swap_first_and_last(connection: Connection, three: list[Row]) -> tuple[int, Break]:
    low, high = three[0]["seq"], three[2]["seq"]
    parked = high + 1_000_000
    set_values(connection, low, seq=parked)
    set_values(connection, high, seq=low)
    set_values(connection, parked, seq=high)
    return low, Break.PREVIOUS_HASH


def forge_unlinked(connection: Connection, three: list[Row]) -> tuple[int, Break]:
    made_up = hashlib.sha256(b"a record that never was").hexdigest()
    return forge_after(connection, three[2], prev_hash=made_up), Break.PREVIOUS_HASH


def forge_linked_with_a_wrong_hash(connection: Connection, three: list[Row]) -> tuple[int, Break]:
    wrong = hashlib.sha256(b"not this record's hash").hexdigest()
    return forge_after(connection, three[2], prev_hash=three[2]["hash"], hash_=wrong), Break.HASH


def edit_request_body(connection: Connection, three: list[Row]) -> tuple[int, Break]:
    middle = three[1]
    set_values(connection, middle["seq"], request_body=middle["request_body"].replace("serum", "plasma"))
    return middle["seq"], Break.REQUEST_BODY


def backdate_the_head(connection: Connection, three: list[Row]) -> tuple[int, Break]:
    last = three[2]
    set_values(connection, last["seq"], recorded_at=three[1]["recorded_at"] - timedelta(seconds=1))
    rehash(connection, last["seq"])
    return last["seq"], Break.TIME_REVERSED


@pytest.mark.parametrize(
    "tamper",
    [
        edit_status,
        edit_input,
        put_a_huge_integer_in_the_input,
        delete_middle,
        swap_first_and_last,
        forge_unlinked,
        forge_linked_with_a_wrong_hash,
        edit_request_body,
        backdate_the_head,
    ],
)
async def test_verify_pinpoints_what_the_owner_changed(
    client: httpx.AsyncClient, db: Engine, tamper: Tamper
) -> None:
    first = (await decide_three(client))[0].seq
    assert (await verify(client, from_seq=first))["intact"] is True

    with tampering(db, first):
        with behind_the_service(db) as connection:
            where, reason = tamper(connection, rows(db, first))

        report = await verify(client, from_seq=first)
        verified_before = len(rows(db, first, where - 1))

    assert broken(report) == (where, reason.value)
    assert report["checked"] == verified_before
    assert (await verify(client, from_seq=first))["checked"] == 3


async def test_verify_reports_a_first_record_that_does_not_start_from_genesis(
    client: httpx.AsyncClient, db: Engine
) -> None:
    await decide(client)

    with tampering(db, 1):
        with behind_the_service(db) as connection:
            set_values(connection, 1, prev_hash="f" * 64)
        report = await verify(client, to_seq=1)

    assert broken(report) == (1, Break.FIRST_LINK.value)
    assert report["broken"]["expected"] == GENESIS_HASH
    assert report["broken"]["found"] == "f" * 64


async def test_the_verify_command_exits_1_at_the_broken_record(
    client: httpx.AsyncClient, db: Engine, database_url: str
) -> None:
    first, middle, _ = await decide_three(client)
    since = ("audit", "verify", "--from-seq", str(first.seq))

    for jobs in ("1", "2"):
        status, output = await il6(database_url, *since, "--jobs", jobs)
        assert status == 0, output
        assert f"intact: 3 records (seq {first.seq}..{first.seq + 2}" in output

    with tampering(db, first.seq):
        with behind_the_service(db) as connection:
            set_values(connection, middle.seq, request_body=middle.body + " ")
        outputs = [await il6(database_url, *since, "--jobs", jobs) for jobs in ("1", "2")]

    for status, output in outputs:
        assert status == 1, output
        assert f"BROKEN at seq {middle.seq}: request-body-mismatch" in output
        assert "1 records verified before it" in output


async def test_the_checkpoint_command_signs_only_a_chain_that_extends_the_last_checkpoint(
    client: httpx.AsyncClient,
    db: Engine,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = await decide(client)
    kept = await checkpoint(client)
    await decide(client)
    log = tmp_path / "checkpoints.jsonl"
    log.write_text(json.dumps(kept) + "\n", encoding="utf-8")
    monkeypatch.setenv("IL6_CHECKPOINT_FILE", str(log))

    status, output = await il6(database_url, "audit", "checkpoint")

    assert status == 0, output
    assert json.loads(output)["seq"] == kept["seq"] + 1

    with tampering(db, first.seq):
        with behind_the_service(db) as connection:
            set_values(connection, kept["seq"], risk_group=None)  # the checkpointed record rewritten
        status, output = await il6(database_url, "audit", "checkpoint")

    assert status == 1, output
    assert f"not signed: the audit chain does not extend the checkpoint signed at seq {kept['seq']}" in output
    assert '"signature"' not in output


async def test_the_verify_command_does_not_read_the_checkpoint_log(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only signing builds on the log: a check runs even when the log cannot be read."""
    first = await decide(client)
    log = tmp_path / "checkpoints.jsonl"
    log.write_bytes(b"\xff\xfe not text\n")
    monkeypatch.setenv("IL6_CHECKPOINT_FILE", str(log))

    status, output = await il6(database_url, "audit", "verify", "--from-seq", str(first.seq))

    assert status == 0, output
    assert output.startswith("intact: 1 records"), output


UNREACHABLE = "postgresql+psycopg://il6@127.0.0.1:1/nowhere"
"""A database URL whose server refuses at once: nothing listens on port 1."""


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (("audit", "verify"), "not verified"),
        (("audit", "verify", "--jobs", "2"), "not verified"),
        (("audit", "checkpoint"), "not signed"),
    ],
)
async def test_the_audit_commands_exit_3_when_the_store_cannot_be_read(
    command: tuple[str, ...], said: str
) -> None:
    """Not 1: a store that is down says nothing about the chain, and a scheduled check must tell the two
    apart."""
    status, output = await il6(UNREACHABLE, *command)

    assert status == 3, output
    assert output == f"{said}: the database could not be read or written\n"


async def test_a_worker_that_cannot_read_its_range_reports_the_store_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's StoreUnavailable reaches the command as itself (exit status 3), not as a broken pool."""
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    monkeypatch.delenv("IL6_DATABASE_URL", raising=False)
    workers = RangesInProcesses(1)
    try:
        with pytest.raises(StoreUnavailable, match="could not be read"):
            await workers(1, None, (), None)
    finally:
        workers.close()


# --- 4. signed checkpoints ------------------------------------------------------------------------------


def signed_statement(kept: Mapping[str, Any]) -> bytes:
    return bytes(rfc8785.dumps({name: kept[name] for name in CHECKPOINT_STATEMENT}))


async def test_the_checkpoint_is_the_signed_head(client: httpx.AsyncClient, db: Engine) -> None:
    await decide(client)
    head_seq, head_hash = head(db)

    kept = await checkpoint(client)

    assert set(kept) == {*CHECKPOINT_STATEMENT, "signature", "public_key"}
    assert kept["log"] == "il6-eligibility-audit"
    assert (kept["seq"], kept["hash"]) == (head_seq, head_hash)
    assert CANONICAL_TIME.match(kept["issued_at"])
    raw_key = base64.b64decode(kept["public_key"], validate=True)
    assert kept["key_id"] == "ed25519:" + hashlib.sha256(raw_key).hexdigest()
    public_key = Ed25519PublicKey.from_public_bytes(raw_key)
    signature = base64.b64decode(kept["signature"], validate=True)
    public_key.verify(signature, signed_statement(kept))
    with pytest.raises(InvalidSignature):
        public_key.verify(signature, signed_statement({**kept, "seq": head_seq - 1}))


async def test_verify_against_a_kept_checkpoint(client: httpx.AsyncClient) -> None:
    first = await decide(client)
    kept = await checkpoint(client)

    response = await verify_against(client, [kept], from_seq=first.seq)

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["intact"] is True
    assert report["checkpoints_checked"] == 1
    assert (report["last_seq"], report["last_hash"]) == (kept["seq"], kept["hash"])


def flip_hex(value: str) -> str:
    return value[:-1] + ("0" if value[-1] != "0" else "1")


def flip_signature(signature: str) -> str:
    raw = bytearray(base64.b64decode(signature))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode("ascii")


@pytest.mark.parametrize(
    "alter",
    [
        pytest.param(lambda kept: {**kept, "hash": flip_hex(kept["hash"])}, id="hash"),
        pytest.param(lambda kept: {**kept, "signature": flip_signature(kept["signature"])}, id="signature"),
        pytest.param(lambda kept: {**kept, "seq": kept["seq"] - 1}, id="seq"),
    ],
)
async def test_an_altered_checkpoint_is_refused(
    client: httpx.AsyncClient, alter: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    await decide(client)
    kept = await checkpoint(client)

    response = await verify_against(client, [alter(kept)])

    assert_problem(response, 422, "invalid-checkpoint")


async def test_a_cut_tail_shows_only_against_a_checkpoint(client: httpx.AsyncClient, db: Engine) -> None:
    first, second, _ = await decide_three(client)
    kept = await checkpoint(client)

    with tampering(db, first.seq):
        with behind_the_service(db) as connection:
            connection.execute(delete(ASSESSMENT).where(ASSESSMENT.c.seq >= second.seq))
        alone = await verify(client, from_seq=first.seq)
        against = await verify_against(client, [kept], from_seq=first.seq)

    assert alone["intact"] is True
    assert alone["last_seq"] == first.seq
    assert against.status_code == 200, against.text
    assert broken(against.json()) == (kept["seq"], Break.CHECKPOINT_MISSING.value)
    assert against.json()["checkpoints_checked"] == 1


async def test_a_recomputed_chain_shows_only_against_a_checkpoint(
    client: httpx.AsyncClient, db: Engine
) -> None:
    first = await decide(client)
    await decide(client)
    earlier = await checkpoint(client)
    await decide(client)
    later = await checkpoint(client)

    with tampering(db, first.seq):
        with behind_the_service(db) as connection:
            status = another_status(first.out["eligibility"]["status"])
            set_values(connection, first.seq, eligibility_status=status)
            rehash(connection, first.seq)
        alone = await verify(client, from_seq=first.seq)
        against = await verify_against(client, [earlier], from_seq=first.seq)
        rewritten = head(db)

    assert alone["intact"] is True
    assert alone["checked"] == 3
    assert rewritten[1] != later["hash"]
    assert against.status_code == 200, against.text
    assert broken(against.json()) == (earlier["seq"], Break.CHECKPOINT_HASH.value)
    assert against.json()["broken"]["expected"] == earlier["hash"]
    restored = await verify_against(client, [earlier, later], from_seq=first.seq)
    assert restored.json()["intact"] is True
    assert restored.json()["checkpoints_checked"] == 2


# --- 5. export and offline verification -----------------------------------------------------------------


async def decide_for_export(client: httpx.AsyncClient) -> list[Decided]:
    """Three decisions whose records fill the optional fields, one with text that CSV must quote."""
    first = await decide(client, headers={"Idempotency-Key": str(uuid.uuid4())}, site_id=None)
    other = await decide(client, value=40, comparator=None)
    reason = 'unit misread, "ng" for "pg";\r\nre-entered by Zoë'
    correction = await decide(
        client,
        extra={"supersedes": first.out["id"], "correction_reason": reason},
        subject=first.out["subject_id"],
        site_id=None,
    )
    return [first, other, correction]


async def test_ndjson_export_streams_the_records_in_order(client: httpx.AsyncClient, db: Engine) -> None:
    decided = await decide_for_export(client)
    first, last = decided[0].seq, decided[-1].seq

    records = ndjson_records(await export(client, format="ndjson", from_seq=first, to_seq=last))

    assert [record["seq"] for record in records] == [d.seq for d in decided]
    for record, d, row in zip(records, decided, rows(db, first, last), strict=True):
        assert list(record) == EXPORT_COLUMNS
        assert record == {**to_record(row), "hash": row["hash"], "request_body": row["request_body"]}
        assert record["hash"] == d.audit["hash"] == record_hash({k: record[k] for k in RECORD_FIELDS})
        assert record["prev_hash"] == d.audit["prev_hash"]
        assert record["request_body"] == d.body
    assert records[0]["idempotency_key"] is not None
    assert records[2]["supersedes"] == decided[0].out["id"]


async def test_csv_export_holds_the_same_records(client: httpx.AsyncClient) -> None:
    decided = await decide_for_export(client)
    first, last = decided[0].seq, decided[-1].seq
    bounds = {"from_seq": first, "to_seq": last}
    records = ndjson_records(await export(client, format="ndjson", **bounds))

    table = csv_rows(await export(client, format="csv", **bounds))

    assert [int(row["seq"]) for row in table] == [d.seq for d in decided]
    for row, record in zip(table, records, strict=True):
        for column in EXPORT_COLUMNS:
            value = record[column]
            if value is None:
                assert row[column] == ""
            elif column in ("input", "decision"):
                assert json.loads(row[column]) == value
            else:
                assert row[column] == str(value)


@pytest.mark.parametrize("format_", ["ndjson", "csv"])
async def test_export_by_time_is_half_open(client: httpx.AsyncClient, format_: str) -> None:
    first, second, third = await decide_three(client)
    times = [d.out["recorded_at"] for d in (first, second, third)]
    assert times[0] < times[1] < times[2]

    between = await export(client, format=format_, from_time=times[1], to_time=times[2])
    from_second = await export(client, format=format_, from_time=times[1], to_seq=third.seq)

    assert exported_seqs(between, format_) == [second.seq]
    assert exported_seqs(from_second, format_) == [second.seq, third.seq]


@pytest.mark.parametrize("parameter", ["from_time", "to_time"])
async def test_export_refuses_a_time_without_an_offset(client: httpx.AsyncClient, parameter: str) -> None:
    response = await client.get("/v1/audit/export", params={parameter: "2026-11-26T00:00:00"})

    assert_problem(response, 422, "validation-error")


async def test_the_whole_export_verifies_offline(
    client: httpx.AsyncClient, db: Engine, tmp_path: Path
) -> None:
    await decide_for_export(client)
    head_seq, head_hash = head(db)
    response = await export(client)

    assert exported_seqs(response, "ndjson") == list(range(1, head_seq + 1))
    status, output = verify_export(tmp_path, response.content)
    assert status == 0, output
    assert f"intact: {head_seq} records (seq 1..{head_seq}, head {head_hash})" in output


@pytest.mark.parametrize("format_", ["ndjson", "csv"])
async def test_an_export_verifies_offline_against_a_checkpoint(
    client: httpx.AsyncClient, tmp_path: Path, format_: str
) -> None:
    decided = await decide_for_export(client)
    kept = await checkpoint(client)
    response = await export(client, format=format_, from_seq=decided[0].seq)

    status, output = verify_export(tmp_path, response.content, kept, kept["public_key"])

    assert status == 0, output
    assert f"intact: 3 records (seq {decided[0].seq}..{kept['seq']}, head {kept['hash']})" in output
    assert "1 checkpoint(s) matched" in output


def tamper_line(export: bytes, format_: str, seq: int) -> bytes:
    """The export with one field of record ``seq`` changed."""
    if format_ == "ndjson":
        lines = export.decode().splitlines(keepends=True)
        for index, line in enumerate(lines):
            record = json.loads(line)
            if record["seq"] == seq:
                record["eligibility_status"] = another_status(record["eligibility_status"])
                lines[index] = json.dumps(record, ensure_ascii=False) + "\n"
        return "".join(lines).encode()
    table = list(csv.reader(io.StringIO(export.decode(), newline="")))
    column = table[0].index("eligibility_status")
    for row in table[1:]:
        if row[0] == str(seq):
            row[column] = another_status(row[column])
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(table)
    return buffer.getvalue().encode()


@pytest.mark.parametrize("format_", ["ndjson", "csv"])
async def test_a_tampered_export_fails_offline_at_its_record(
    client: httpx.AsyncClient, tmp_path: Path, format_: str
) -> None:
    decided = await decide_for_export(client)
    response = await export(client, format=format_, from_seq=decided[0].seq)
    middle = decided[1].seq

    status, output = verify_export(tmp_path, tamper_line(response.content, format_, middle))

    assert status == 1, output
    assert f"BROKEN at seq {middle}: hash-mismatch" in output


async def test_a_cut_export_fails_offline_against_a_later_checkpoint(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    decided = await decide_three(client)
    kept = await checkpoint(client)
    response = await export(client, from_seq=decided[0].seq, to_seq=decided[1].seq)

    status, output = verify_export(tmp_path, response.content, kept, kept["public_key"])

    assert status == 1, output
    assert f"BROKEN at seq {kept['seq']}: checkpoint-beyond-chain" in output


async def test_an_export_of_a_range_verifies_against_a_later_checkpoint_when_its_end_is_named(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    decided = await decide_three(client)
    kept = await checkpoint(client)
    response = await export(client, from_seq=decided[0].seq, to_seq=decided[1].seq)

    named = verify_export(
        tmp_path, response.content, kept, kept["public_key"], "--to-seq", str(decided[1].seq)
    )
    short = verify_export(tmp_path, response.content, kept, kept["public_key"], "--to-seq", str(kept["seq"]))

    assert named[0] == 0, named[1]
    assert short[0] == 1, short[1]  # asked to the checkpoint's record, the export stops short of it
    assert f"BROKEN at seq {kept['seq']}: checkpoint-beyond-chain" in short[1]


@pytest.mark.parametrize(
    ("alter", "public_key", "refusal"),
    [
        pytest.param(
            lambda kept: {**kept, "signature": flip_signature(kept["signature"])},
            True,
            "has an invalid signature",
            id="wrong-signature",
        ),
        pytest.param(lambda kept: kept, False, "needs the service's public key", id="no-public-key"),
    ],
)
async def test_offline_verification_refuses_an_unverifiable_checkpoint(
    client: httpx.AsyncClient,
    tmp_path: Path,
    alter: Callable[[dict[str, Any]], dict[str, Any]],
    public_key: bool,
    refusal: str,
) -> None:
    first = await decide(client)
    kept = await checkpoint(client)
    response = await export(client, from_seq=first.seq)

    key = kept["public_key"] if public_key else None
    status, output = verify_export(tmp_path, response.content, alter(kept), key)

    assert status == 2, output
    assert refusal in output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_inverted_range_is_refused(client: httpx.AsyncClient) -> None:
    by_query = await client.get("/v1/audit/verify", params={"from_seq": 5, "to_seq": 4})
    by_body = await client.post("/v1/audit/verify", json={"from_seq": 5, "to_seq": 4})

    assert by_query.status_code == by_body.status_code == 422
    assert by_query.json()["errors"][0]["parameter"] == "to_seq"
    assert by_body.json()["errors"][0]["pointer"] == "/to_seq"
