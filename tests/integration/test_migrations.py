"""Migration 0002 links decisions recorded before the chain existed, and both backends round-trip."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine, make_url, text

from app.domain.audit import GENESIS_HASH, record_hash, to_record
from app.store.database import database_urls
from app.store.migrations import alembic_config
from tests.conftest import POSTGRES_ADMIN_URL

LEGACY_ROWS = 3


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own, at no revision: these tests move it between revisions."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    name = f"il6_mig_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(POSTGRES_ADMIN_URL)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _insert_legacy_rows(url: str) -> None:
    """Decisions as revision 0001 stored them: sequence-numbered with a gap, no chain fields, and two
    writers' commits out of time order (seq 5 timed before seq 2), as 0001 could record them."""
    engine = create_engine(database_urls(url)[1])
    start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with engine.begin() as connection:
        for index, (seq, offset) in enumerate(((1, 0), (2, 2), (5, 1))[:LEGACY_ROWS]):
            recorded_at = start + timedelta(seconds=offset)
            connection.execute(
                text(
                    "INSERT INTO assessment (seq, id, recorded_at, subject_id, site_id, classifier_name, "
                    "classifier_version, classifier_digest, eligibility_status, risk_group, "
                    "request_media_type, request_sha256, request_body, input, decision) VALUES (:seq, :id, "
                    ":recorded_at, :subject, 'PIT', 'il6-enrichment', '1.0.0', 'sha256:x', 'eligible', "
                    "'low', 'application/json', :sha, '{}', :input, :decision)"
                ),
                {
                    "seq": seq,
                    "id": str(uuid.uuid4()) if engine.dialect.name == "sqlite" else uuid.uuid4(),
                    "recorded_at": recorded_at
                    if engine.dialect.name == "postgresql"
                    else recorded_at.replace(tzinfo=None).isoformat(sep=" "),
                    "subject": f"LEGACY-{index}",
                    "sha": "0" * 64,
                    "input": json.dumps({"subject_id": f"LEGACY-{index}"}),
                    "decision": json.dumps({"eligibility": {"status": "eligible"}}),
                },
            )
    engine.dispose()


def test_existing_decisions_are_linked_into_the_chain(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0001")
    _insert_legacy_rows(empty_database)

    command.upgrade(config, "head")

    engine = create_engine(database_urls(empty_database)[1])
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM assessment ORDER BY seq")).mappings().all()
    finally:
        engine.dispose()
    assert [row["seq"] for row in rows] == list(range(1, LEGACY_ROWS + 1))  # the old gap is closed
    # Linked in time order, so that the chain never reads as time going backwards.
    assert [row["subject_id"] for row in rows] == ["LEGACY-0", "LEGACY-2", "LEGACY-1"]
    previous = GENESIS_HASH
    for row in rows:
        values = dict(row)
        for name in ("input", "decision"):
            if isinstance(values[name], str):
                values[name] = json.loads(values[name])
        if isinstance(values["id"], str):
            values["id"] = uuid.UUID(values["id"])
        if isinstance(values["recorded_at"], str):
            values["recorded_at"] = datetime.fromisoformat(values["recorded_at"]).replace(tzinfo=UTC)
        assert values["client_id"] == "unrecorded"
        assert values["prev_hash"] == previous
        assert values["hash"] == record_hash(to_record(values))
        previous = values["hash"]


def test_the_audit_migration_will_not_go_down_over_records(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0001")
    _insert_legacy_rows(empty_database)
    command.upgrade(config, "head")

    with pytest.raises(RuntimeError, match="holds records"):
        command.downgrade(config, "0001")
    command.check(config)  # still at head, untouched


def test_the_audit_migration_round_trips(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "head")
    command.downgrade(config, "0001")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    command.check(config)
