"""Engines and sessions for the two supported backends: PostgreSQL (psycopg 3) and SQLite (embedded)."""

from pathlib import Path
from typing import Any

from sqlalchemy import URL, event, make_url
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from app.settings import Settings

_DRIVERS = {
    "postgresql": ("postgresql+psycopg", "postgresql+psycopg"),
    "sqlite": ("sqlite+aiosqlite", "sqlite+pysqlite"),
}


def database_urls(url: str) -> tuple[URL, URL]:
    """The (async, sync) URLs for a configured database URL; refuses backends the service does not run on."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS or parsed.get_driver_name() not in {
        "",
        "psycopg",
        "aiosqlite",
        "pysqlite",
    }:
        raise ValueError("DATABASE_URL must be postgresql+psycopg://... or sqlite:///...")
    async_driver, sync_driver = _DRIVERS[backend]
    return parsed.set(drivername=async_driver), parsed.set(drivername=sync_driver)


def ensure_sqlite_directory(url: URL) -> None:
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def configure_sqlite(engine: Engine, busy_timeout_s: float = 5.0, *, begin_immediate: bool = False) -> None:
    """Durable, concurrent-reader settings for every SQLite connection the engine opens.

    With ``begin_immediate`` every transaction takes SQLite's single write lock when it begins, so that
    the audit chain's read-head-then-append runs as one turn even across processes (the driver's own
    deferred BEGIN would let two transactions read the same head).
    """

    def pragmas(dbapi_connection: Any, _: ConnectionPoolEntry) -> None:
        if begin_immediate:
            dbapi_connection.isolation_level = None  # the driver emits no BEGIN; the "begin" hook does
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={round(busy_timeout_s * 1000)}")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    if begin_immediate:
        event.listen(engine, "begin", _begin)


def _begin(connection: Connection) -> None:
    """IMMEDIATE, but for a transaction marked read-only: WAL lets it read beside the one writer."""
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_engine_for(settings: Settings) -> AsyncEngine:
    async_url, _ = database_urls(settings.database_url.get_secret_value())
    ensure_sqlite_directory(async_url)
    if async_url.get_backend_name() == "sqlite":
        engine = create_async_engine(
            async_url, hide_parameters=True, connect_args={"timeout": settings.db_connect_timeout_s}
        )
        configure_sqlite(engine.sync_engine, settings.db_connect_timeout_s, begin_immediate=True)
        return engine
    return create_async_engine(
        async_url,
        # Bound parameters are subject ids and values: never let them into an exception message.
        hide_parameters=True,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        # No pre-ping: it costs a round trip per request. A connection found dead fails that one request
        # with 503 (nothing recorded) and SQLAlchemy then invalidates the pool.
        pool_timeout=settings.db_connect_timeout_s,
        connect_args={
            "connect_timeout": max(1, round(settings.db_connect_timeout_s)),
            # A transaction whose client has gone silent is ended by the server, releasing the audit
            # chain's lock, instead of blocking every append until TCP gives up (hours).
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}"
            f" -c idle_in_transaction_session_timeout={settings.db_idle_in_transaction_timeout_ms}"
            # The role is set at connection start: the service acts with the audit role's privileges
            # (SELECT and INSERT on the audit trail) even when the URL names the schema owner.
            + (f" -c role={settings.database_role}" if settings.database_role else ""),
            # And on this side, a server that has gone silent fails its connection within seconds.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
            "tcp_user_timeout": settings.db_statement_timeout_ms + 5000,
            "application_name": "il6-eligibility",
        },
    )


def verify_ranges(engine: AsyncEngine) -> int:
    """How many ranges of the audit trail to check at once: two on PostgreSQL, where each is a server
    process of its own; one on SQLite, whose reads all run in this process."""
    return 2 if engine.dialect.name == "postgresql" else 1


READ_ONLY = "il6_read_only"
"""An execution option: the transaction only reads (on SQLite it then begins DEFERRED, sharing the file)."""


def create_session_factory(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; ``read_only`` ones do not take SQLite's write lock when they begin."""
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


def create_lookup_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for a read of one statement (every request's key lookup). On PostgreSQL they run in
    autocommit: at READ COMMITTED a transaction adds nothing to one statement but a BEGIN and a ROLLBACK,
    and psycopg forgets the connection's prepared statements at every ROLLBACK. On SQLite: ``read_only``."""
    if engine.dialect.name != "postgresql":
        return create_session_factory(engine, read_only=True)
    bind = engine.execution_options(isolation_level="AUTOCOMMIT", **{READ_ONLY: True})
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)
