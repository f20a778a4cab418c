"""A decision that could not be recorded is not given: 503, and nothing stored."""

import json
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text

from app.settings import Environment, Settings
from tests.factories import assessment_body, subject_id
from tests.integration.conftest import app_client, count_rows

FAILING_SUBJECT = "COMMIT-FAILS"

POSTGRES_COMMIT_FAILS = [
    # A deferred constraint trigger runs at COMMIT: the INSERT succeeds, the commit itself fails.
    """CREATE FUNCTION test_refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.subject_id = 'COMMIT-FAILS' THEN RAISE EXCEPTION 'commit refused by test'; END IF;
         RETURN NULL;
       END $$""",
    """CREATE CONSTRAINT TRIGGER test_refuse_commit AFTER INSERT ON assessment
       DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse_commit()""",
]
POSTGRES_UNDO = ["DROP TRIGGER test_refuse_commit ON assessment", "DROP FUNCTION test_refuse_commit()"]
SQLITE_WRITE_FAILS = [
    """CREATE TRIGGER test_refuse_write BEFORE INSERT ON assessment
       WHEN NEW.subject_id = 'COMMIT-FAILS' BEGIN SELECT RAISE(ABORT, 'write refused by test'); END""",
]
SQLITE_UNDO = ["DROP TRIGGER test_refuse_write"]


@pytest.fixture
def refusing_store(db: Engine) -> Iterator[None]:
    postgres = db.dialect.name == "postgresql"
    with db.begin() as connection:
        for statement in POSTGRES_COMMIT_FAILS if postgres else SQLITE_WRITE_FAILS:
            connection.execute(text(statement))
    yield
    with db.begin() as connection:
        for statement in POSTGRES_UNDO if postgres else SQLITE_UNDO:
            connection.execute(text(statement))


@pytest.mark.usefixtures("refusing_store")
async def test_failed_commit_or_write_gives_no_decision(client: httpx.AsyncClient, db: Engine) -> None:
    """On PostgreSQL the COMMIT itself fails; SQLite has no deferred triggers, so there the INSERT does."""
    response = await client.post(
        "/v1/assessments",
        content=json.dumps(assessment_body(subject=FAILING_SUBJECT)),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    problem = response.json()
    assert problem["type"] == "/problems/audit-store-unavailable"
    assert "eligibility" not in problem
    assert "commit refused" not in response.text
    assert "write refused" not in response.text
    assert count_rows(db, FAILING_SUBJECT) == 0

    # The service recovers as soon as the store accepts writes for others.
    ok = await client.post(
        "/v1/assessments",
        content=json.dumps(assessment_body()),
        headers={"content-type": "application/json"},
    )
    assert ok.status_code == 201


async def test_unreachable_database_is_503_everywhere_it_matters() -> None:
    settings = Settings(
        database_url=SecretStr("postgresql+psycopg://postgres@127.0.0.1:9/none"),
        environment=Environment.TEST,
        db_connect_timeout_s=1,
    )
    async for client in app_client(settings, with_key=False):
        created = await client.post(
            "/v1/assessments",
            content=json.dumps(assessment_body(subject=subject_id())),
            headers={"content-type": "application/json"},
        )
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")

        # Even the caller's key cannot be checked: 503, never a 401 that would blame the credential.
        assert created.status_code == 503
        assert created.json()["type"] == "/problems/audit-store-unavailable"
        assert "127.0.0.1" not in created.text
        assert ready.status_code == 503
        assert ready.json()["type"] == "/problems/not-ready"
        assert alive.status_code == 200


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_service_recovers_after_the_database_drops_its_connections(
    client: httpx.AsyncClient, db: Engine
) -> None:
    warm = await client.post(
        "/v1/assessments", content=json.dumps(assessment_body()), headers={"content-type": "application/json"}
    )
    assert warm.status_code == 201
    with db.connect() as connection:
        # As a failover or restart would: every other session on this database is terminated.
        dropped = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    assert dropped >= 1

    statuses = []
    for _ in range(3):
        subject = subject_id()
        response = await client.post(
            "/v1/assessments",
            content=json.dumps(assessment_body(subject=subject)),
            headers={"content-type": "application/json"},
        )
        statuses.append(response.status_code)
        assert count_rows(db, subject) == (1 if response.status_code == 201 else 0)

    # At most the first request meets a dead connection (503, nothing recorded); then the pool is renewed.
    assert statuses[1:] == [201, 201]
    assert statuses[0] in (201, 503)
