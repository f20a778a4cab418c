"""The API against real databases: a migrated SQLite file and a fresh PostgreSQL database per session."""

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import Connection, Engine, create_engine, make_url, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.access import ALL_SITES, Scope, key_id_of
from app.main import create_app
from app.service.access import KeyService
from app.settings import Environment, Settings
from app.store.database import configure_sqlite, create_engine_for, create_session_factory, database_urls
from app.store.migrations import upgrade
from app.store.models import Assessment
from tests.conftest import POSTGRES_ADMIN_URL


@contextmanager
def fresh_postgresql() -> Iterator[str]:
    """A new, migrated PostgreSQL database for the block, dropped after it."""
    name = f"il6_it_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = (
        make_url(POSTGRES_ADMIN_URL)
        .set(drivername="postgresql+psycopg", database=name)
        .render_as_string(hide_password=False)
    )
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_sqlite(directory: Path) -> str:
    """A new, migrated SQLite database file in ``directory``."""
    url = f"sqlite:///{directory / f'il6-{uuid.uuid4().hex[:8]}.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own, for a test that changes what every other test would see (which
    classifier versions are active, say)."""
    if request.param == "sqlite":
        yield fresh_sqlite(tmp_path)
        return
    with fresh_postgresql() as url:
        yield url


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    with fresh_postgresql() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "il6.sqlite3"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Session factories on the test's database, as the service opens them (no app around them)."""
    settings = Settings(database_url=SecretStr(database_url), environment=Environment.TEST)
    engine = create_engine_for(settings)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    """A plain synchronous engine on the same database, to look behind the service's back."""
    _, sync_url = database_urls(database_url)
    engine = create_engine(sync_url)
    yield engine
    engine.dispose()


@contextmanager
def behind_the_service(db: Engine) -> Iterator[Connection]:
    """A transaction as the database owner with the append-only guard lifted, to tamper as an owner can.

    PostgreSQL: a superuser's ``session_replication_role = replica`` skips the guard's triggers for this
    transaction only. SQLite: the guard's triggers are dropped and made again in the same transaction, on
    an engine whose transactions really begin (the driver's own would commit the DROP at once, and a
    failure inside the block would then leave the guard down for the rest of the session).
    """
    if db.dialect.name == "postgresql":
        with db.begin() as connection:
            connection.execute(text("SET LOCAL session_replication_role = replica"))
            yield connection
        return
    transactional = create_engine(db.url)
    configure_sqlite(transactional, begin_immediate=True)
    try:
        with transactional.begin() as connection:
            triggers = connection.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'assessment'")
            ).all()
            for name, _ in triggers:
                connection.execute(text(f'DROP TRIGGER "{name}"'))
            yield connection
            for _, statement in triggers:
                connection.execute(text(statement))
    finally:
        transactional.dispose()


@contextmanager
def tampered_decision(
    db: Engine, assessment_id: str, change: Callable[[dict[str, Any]], None]
) -> Iterator[None]:
    """The stored decision of ``assessment_id`` changed by ``change`` for the block, then restored, so
    that the shared audit chain verifies again for the tests that follow."""
    key = uuid.UUID(assessment_id)
    with db.connect() as connection:
        stored = connection.execute(select(Assessment.decision).where(Assessment.id == key)).scalar_one()
    original = json.loads(stored) if isinstance(stored, str) else stored
    altered = json.loads(json.dumps(original))
    change(altered)
    with behind_the_service(db) as connection:
        connection.execute(update(Assessment).where(Assessment.id == key).values(decision=altered))
    try:
        yield
    finally:
        with behind_the_service(db) as connection:
            connection.execute(update(Assessment).where(Assessment.id == key).values(decision=original))


def count_rows(db: Engine, subject_id: str | None = None) -> int:
    query = "SELECT count(*) FROM assessment"
    with db.connect() as connection:
        if subject_id is None:
            return int(connection.execute(text(query)).scalar_one())
        return int(connection.execute(text(query + " WHERE subject_id = :s"), {"s": subject_id}).scalar_one())


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


UNKNOWN_KEY = f"il6_{'0' * 16}_{'A' * 43}"
"""Shaped as a key, but never issued: checking it needs the store."""


async def app_client(settings: Settings, *, with_key: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app on ``settings``, holding a new key with every scope for every site (its
    name, ``caller_of(client)``, is what the audit trail records); ``key_headers`` makes narrower ones.
    Without ``with_key`` (a store that cannot be reached, say) it sends a key that was never issued."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        if not with_key:
            client.headers.update(bearer(UNKNOWN_KEY))
            yield client
            return
        name = f"tests-{uuid.uuid4().hex[:12]}"
        keys: KeyService = app.state.services.keys
        new = await keys.create(name, frozenset(Scope), ALL_SITES, created_by="tests")
        client.headers.update(bearer(new.secret))
        yield client


async def caller_of(client: httpx.AsyncClient) -> str:
    """The name the audit trail records for the client's own key."""
    key_id = key_id_of(client.headers["Authorization"].removeprefix("Bearer "))
    key = await client.get(f"/v1/keys/{key_id}")
    assert key.status_code == 200, key.text
    name: str = key.json()["name"]
    return name


async def key_headers(
    client: httpx.AsyncClient,
    *,
    scopes: tuple[str, ...] = ("assess", "read"),
    sites: list[str] | None = None,
    name: str | None = None,
) -> dict[str, str]:
    """Headers carrying a new key (made through the API with the client's admin key)."""
    body = {"name": name or f"tests-{uuid.uuid4().hex[:12]}", "scopes": list(scopes), "sites": sites}
    created = await client.post("/v1/keys", json=body)
    assert created.status_code == 201, created.text
    return bearer(created.json()["secret"])


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in app_client(
        Settings(database_url=SecretStr(database_url), environment=Environment.TEST)
    ):
        yield client
