"""The database refuses an INSERT that does not extend the audit chain's head, whoever sends it."""

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, Table, insert, select, text
from sqlalchemy.exc import DBAPIError

from app.store.models import Assessment
from tests.factories import assessment_body

TABLE: Table = Assessment.__table__  # type: ignore[assignment]


def _head(db: Engine) -> dict[str, Any]:
    with db.connect() as connection:
        statement = select(TABLE).order_by(TABLE.c.seq.desc()).limit(1)
        return dict(connection.execute(statement).mappings().one())


def _next_row(head: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A row that would extend ``head`` exactly, then ``changes`` (its hash is never checked here)."""
    row = {
        **head,
        "seq": head["seq"] + 1,
        "prev_hash": head["hash"],
        "hash": uuid.uuid4().hex * 2,
        "id": uuid.uuid4(),
        "supersedes": None,
        "idempotency_key": None,
    }
    row.update(changes)
    return row


def _attempt(db: Engine, row: dict[str, Any]) -> None:
    """Insert as the service's role would (PostgreSQL: SET ROLE il6_app), never committed."""
    with db.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL ROLE il6_app"))
        try:
            connection.execute(insert(TABLE), row)
        finally:
            connection.rollback()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda head: {"seq": head["seq"] + 2}, id="skips-a-number"),
        pytest.param(lambda head: {"prev_hash": "f" * 64}, id="links-elsewhere"),
        pytest.param(
            lambda head: {"recorded_at": head["recorded_at"] - timedelta(seconds=1)}, id="goes-back-in-time"
        ),
    ],
)
async def test_a_row_that_does_not_extend_the_head_is_refused(
    client: httpx.AsyncClient, db: Engine, change: Any
) -> None:
    assert (await client.post("/v1/assessments", json=assessment_body())).status_code == 201
    head = _head(db)

    with pytest.raises(DBAPIError, match="does not extend the audit chain head"):
        _attempt(db, _next_row(head, **change(head)))
    assert _head(db)["seq"] == head["seq"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_row_timed_in_the_future_is_refused(client: httpx.AsyncClient, db: Engine) -> None:
    assert (await client.post("/v1/assessments", json=assessment_body())).status_code == 201
    head = _head(db)

    with pytest.raises(DBAPIError, match="timed in the future"):
        _attempt(db, _next_row(head, recorded_at=head["recorded_at"] + timedelta(days=365)))
