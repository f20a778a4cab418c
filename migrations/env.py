"""Alembic environment: migrates the database the service is configured for, synchronously."""

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from app.settings import get_settings
from app.store.base import Base
from app.store.database import configure_sqlite, database_urls, ensure_sqlite_directory
from app.store.models import Assessment  # noqa: F401 - registers the tables on Base.metadata

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    # SQLite's DDL is transactional too: a migration that fails part-way leaves nothing behind.
    context.configure(
        connection=connection, target_metadata=target_metadata, compare_type=True, transactional_ddl=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    supplied = config.attributes.get("connection")
    if supplied is not None:
        _run(supplied)
        return
    url = config.attributes.get("database_url") or get_settings().database_url.get_secret_value()
    _, sync_url = database_urls(url)
    ensure_sqlite_directory(sync_url)
    engine = create_engine(sync_url, poolclass=pool.NullPool)
    if sync_url.get_backend_name() == "sqlite":
        configure_sqlite(engine, begin_immediate=True)  # a real BEGIN: each run is all or nothing
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run against a database")
run_migrations_online()
