"""`il6 keys` against real databases: the installed command, run as an operator would run it.

Each command is a separate process (as in test_audit_chain), so the settings it reads come from the
environment given here and ``get_settings``' cache never carries one test's settings into another. The
environment is the test's own: no inherited ``IL6_*`` variable, a known operating-system user (the key
history names changes made here ``cli:<user>``) and the test's directory as the working directory, so
that no default path under ./var is touched.
"""

import asyncio
import hashlib
import json
import os
import stat
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import Engine, Table, create_engine, func, make_url, select

from app.domain.access import API_KEY
from app.service.access import LOCAL_ADMIN
from app.settings import Environment, Settings
from app.store.database import database_urls
from app.store.migrations import upgrade
from app.store.models import ApiKey, ApiKeyEvent
from tests.factories import assessment_body
from tests.integration.conftest import app_client, bearer

IL6 = Path(sys.executable).parent / "il6"
OPERATOR = "trial-operator"
CLI_CALLER = f"cli:{OPERATOR}"
API_KEY_TABLE = cast(Table, ApiKey.__table__)
EVENT_TABLE = cast(Table, ApiKeyEvent.__table__)
_USER_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")  # what getpass.getuser() reads, in order


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


async def run_il6(database_url: str, cwd: Path, *args: str, **environment: str) -> Run:
    """The installed ``il6`` command on ``database_url``; its exit status, stdout and stderr apart."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("IL6_") and name != "DATABASE_URL" and name not in _USER_VARIABLES
    }
    process = await asyncio.create_subprocess_exec(
        str(IL6),
        *args,
        cwd=cwd,
        env={**inherited, "LOGNAME": OPERATOR, "DATABASE_URL": database_url, **environment},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


@dataclass(frozen=True)
class Cli:
    database_url: str
    cwd: Path

    async def __call__(self, *args: str, **environment: str) -> Run:
        return await run_il6(self.database_url, self.cwd, *args, **environment)


@pytest.fixture
def il6(database_url: str, tmp_path: Path) -> Cli:
    return Cli(database_url, tmp_path)


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the same database; the client sends an admin key of its own by default."""
    settings = Settings(
        database_url=SecretStr(database_url), environment=Environment.TEST, checkpoint_interval_s=0
    )
    async for client in app_client(settings):
        yield client


def unique_name() -> str:
    return f"cli-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Created:
    key_id: str
    secret: str
    run: Run


async def create(il6: Cli, name: str, scopes: str = "assess,read", sites: str = "PIT") -> Created:
    run = await il6("keys", "create", "--name", name, "--scopes", scopes, "--sites", sites)
    assert run.code == 0, run.stderr
    secret = run.stdout.strip()
    assert API_KEY.fullmatch(secret), run.stdout
    return Created(secret[4:20], secret, run)


async def decide(client: httpx.AsyncClient, secret: str, site: str) -> httpx.Response:
    return await client.post("/v1/assessments", json=assessment_body(site_id=site), headers=bearer(secret))


async def key_record(client: httpx.AsyncClient, key_id: str) -> dict[str, Any]:
    """The key and its history, as the API shows them to an administrator."""
    response = await client.get(f"/v1/keys/{key_id}")
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


async def authentication_failures(client: httpx.AsyncClient) -> dict[str, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "il6_auth_failures_total" and sample.labels["stage"] == "authentication"
    }


def stored_rows(db: Engine, key_id: str) -> list[dict[str, Any]]:
    """Every stored row about one key: the key and its history."""
    with db.connect() as connection:
        key = connection.execute(select(API_KEY_TABLE).where(API_KEY_TABLE.c.key_id == key_id)).mappings()
        events = connection.execute(select(EVENT_TABLE).where(EVENT_TABLE.c.key_id == key_id)).mappings()
        return [dict(row) for row in [*key, *events]]


def key_count(db: Engine) -> int:
    with db.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(API_KEY_TABLE)).scalar_one())


def keys_named(db: Engine, prefix: str) -> list[str]:
    """The stored names that start with ``prefix`` (a unique name: the key of that name, if any)."""
    with db.connect() as connection:
        names = connection.execute(
            select(API_KEY_TABLE.c.name).where(API_KEY_TABLE.c.name.startswith(prefix))
        )
        return list(names.scalars())


def names_listed(run: Run, name: str) -> list[str]:
    return [line for line in run.stdout.splitlines() if f"  {name}  " in line]


# --- create --------------------------------------------------------------------------------------------


async def test_create_prints_only_the_secret_and_the_key_works(il6: Cli, service: httpx.AsyncClient) -> None:
    name = unique_name()

    created = await create(il6, name)

    assert created.run.stdout == created.secret + "\n"  # one line: what a script captures is the key
    assert name in created.run.stderr
    assert created.secret not in created.run.stderr
    for_its_site = await decide(service, created.secret, "PIT")
    assert for_its_site.status_code == 201, for_its_site.text
    assert for_its_site.json()["audit"]["client_id"] == name
    other_site = await decide(service, created.secret, "UPMC")
    assert other_site.status_code == 403
    assert other_site.json()["type"] == "/problems/forbidden"
    record = await key_record(service, created.key_id)
    assert (record["name"], record["scopes"], record["sites"]) == (name, ["assess", "read"], ["PIT"])
    assert (record["created_by"], record["history"][0]["by"]) == (CLI_CALLER, CLI_CALLER)


async def test_the_secret_is_not_stored(il6: Cli, db: Engine, database_url: str) -> None:
    created = await create(il6, unique_name())

    rows = stored_rows(db, created.key_id)

    stored = json.dumps(rows, default=str)
    assert len(rows) == 2  # the key and its "created" event
    assert created.secret not in stored
    assert created.secret[21:] not in stored  # nor its random part alone
    assert rows[0]["secret_sha256"] == hashlib.sha256(created.secret.encode()).hexdigest()
    if database_url.startswith("sqlite"):  # nor anywhere in the database's files
        path = Path(make_url(database_url).database or "")
        files = [path, path.with_name(path.name + "-wal")]
        assert not [file for file in files if file.exists() and created.secret.encode() in file.read_bytes()]


async def test_a_duplicate_name_is_refused_without_a_secret(il6: Cli, db: Engine) -> None:
    name = unique_name()
    await create(il6, name)

    again = await il6("keys", "create", "--name", name, "--scopes", "read", "--sites", "*")

    assert again.code == 1
    assert again.stdout == ""
    assert "refused" in again.stderr
    assert "never reused" in again.stderr
    assert API_KEY.search(again.stderr) is None
    assert keys_named(db, name) == [name]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--scopes", "assess,write"),
        ("--scopes", ""),
        ("--sites", "P IT"),
        ("--sites", "*,PIT"),
        ("--sites", ","),
    ],
)
async def test_an_unknown_scope_or_malformed_site_is_a_usage_error(
    il6: Cli, db: Engine, option: str, value: str
) -> None:
    name = unique_name()
    arguments = {"--scopes": "assess,read", "--sites": "PIT", option: value}

    run = await il6("keys", "create", "--name", name, *(part for pair in arguments.items() for part in pair))

    assert run.code == 2, run.stderr
    assert run.stdout == ""
    assert run.stderr.startswith("refused: ")
    assert keys_named(db, name) == []


async def test_a_name_with_a_trailing_newline_is_refused(il6: Cli, db: Engine) -> None:
    name = unique_name()

    run = await il6("keys", "create", "--name", name + "\n", "--scopes", "read", "--sites", "PIT")

    assert run.code == 1
    assert API_KEY.search(run.stdout) is None
    assert keys_named(db, name) == []


# --- list, expire, revoke ------------------------------------------------------------------------------


async def test_list_shows_each_key_but_never_a_secret(il6: Cli) -> None:
    name = unique_name()
    created = await create(il6, name, scopes="read,assess", sites="UPMC,PIT")

    listed = await il6("keys", "list")

    assert listed.code == 0, listed.stderr
    (line,) = names_listed(listed, name)
    assert line.startswith(f"{created.key_id}  ")
    assert line.split()[2] == "active"
    assert "scopes=assess,read" in line
    assert "sites=PIT,UPMC" in line
    assert API_KEY.search(listed.stdout + listed.stderr) is None
    assert created.secret[21:] not in listed.stdout
    assert hashlib.sha256(created.secret.encode()).hexdigest() not in listed.stdout


async def test_expire_stops_the_key_at_once(il6: Cli, service: httpx.AsyncClient) -> None:
    created = await create(il6, unique_name())
    assert (await decide(service, created.secret, "PIT")).status_code == 201

    expired = await il6("keys", "expire", created.key_id, "--reason", "rotated")

    assert expired.code == 0, expired.stderr
    assert expired.stdout.split()[2] == "expired"
    refused = await decide(service, created.secret, "PIT")
    assert refused.status_code == 401
    assert refused.json()["type"] == "/problems/unauthenticated"
    assert (await authentication_failures(service)).get("expired") == 1
    record = await key_record(service, created.key_id)
    assert record["state"] == "expired"
    assert [(e["event"], e["by"], e["reason"]) for e in record["history"]] == [
        ("created", CLI_CALLER, None),
        ("expiry-set", CLI_CALLER, "rotated"),
    ]


async def test_revoke_stops_the_key_and_is_final(il6: Cli, service: httpx.AsyncClient) -> None:
    created = await create(il6, unique_name())
    assert (await decide(service, created.secret, "PIT")).status_code == 201

    revoked = await il6("keys", "revoke", created.key_id, "--reason", "left the trial")

    assert revoked.code == 0, revoked.stderr
    assert revoked.stdout.split()[2] == "revoked"
    refused = await decide(service, created.secret, "PIT")
    assert refused.status_code == 401
    assert (await authentication_failures(service)).get("revoked") == 1
    record = await key_record(service, created.key_id)
    assert (record["state"], record["revoked_by"]) == ("revoked", CLI_CALLER)
    assert [(e["event"], e["by"], e["reason"]) for e in record["history"]] == [
        ("created", CLI_CALLER, None),
        ("revoked", CLI_CALLER, "left the trial"),
    ]

    again = await il6("keys", "revoke", created.key_id)
    expire_after = await il6("keys", "expire", created.key_id)

    assert (again.code, expire_after.code) == (1, 1)
    assert "is revoked" in again.stderr
    assert len((await key_record(service, created.key_id))["history"]) == 2  # nothing more recorded


@pytest.mark.parametrize("command", ["revoke", "expire"])
async def test_an_unknown_key_id_is_refused(il6: Cli, command: str) -> None:
    run = await il6("keys", command, uuid.uuid4().hex[:16])

    assert run.code == 1
    assert run.stdout == ""
    assert "no key with this id" in run.stderr


# --- bootstrap -----------------------------------------------------------------------------------------


@pytest.fixture
def empty_store(tmp_path: Path) -> str:
    """A freshly migrated SQLite file without a single key."""
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    upgrade(url)
    return url


def sync_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_urls(database_url)[1])
    yield engine
    engine.dispose()


@pytest.fixture
def empty_db(empty_store: str) -> Iterator[Engine]:
    yield from sync_engine(empty_store)


@pytest.fixture
def postgresql_db(postgresql_url: str) -> Iterator[Engine]:
    yield from sync_engine(postgresql_url)


async def bootstrap(database_url: str, cwd: Path, key_file: Path, **environment: str) -> Run:
    return await run_il6(
        database_url, cwd, "keys", "bootstrap", IL6_LOCAL_ADMIN_KEY_FILE=str(key_file), **environment
    )


async def test_bootstrap_on_an_empty_store_makes_the_local_admin_key(
    empty_store: str, empty_db: Engine, tmp_path: Path
) -> None:
    key_file = tmp_path / "secrets" / "local-admin-key"

    run = await bootstrap(empty_store, tmp_path, key_file)

    assert run.code == 0, run.stderr
    assert str(key_file) in run.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = key_file.read_text(encoding="utf-8").removesuffix("\n")
    assert API_KEY.fullmatch(secret)
    assert secret not in run.stdout + run.stderr
    assert key_count(empty_db) == 1
    settings = Settings(
        database_url=SecretStr(empty_store), environment=Environment.TEST, checkpoint_interval_s=0
    )
    async for client in app_client(settings, with_key=False):
        keys = await client.get("/v1/keys", headers=bearer(secret))
        decided = await decide(client, secret, "ANY-SITE")
    assert keys.status_code == 200, keys.text
    (key,) = keys.json()["items"]
    assert (key["name"], key["scopes"], key["sites"]) == (LOCAL_ADMIN, ["admin", "assess", "read"], None)
    assert key["created_by"] == CLI_CALLER
    assert decided.status_code == 201, decided.text
    assert decided.json()["audit"]["client_id"] == LOCAL_ADMIN


async def test_a_second_bootstrap_makes_nothing_and_says_where_the_key_is(
    empty_store: str, empty_db: Engine, tmp_path: Path
) -> None:
    key_file = tmp_path / "local-admin-key"
    assert (await bootstrap(empty_store, tmp_path, key_file)).code == 0
    first = key_file.read_bytes()

    again = await bootstrap(empty_store, tmp_path, key_file)

    assert again.code == 0, again.stderr
    assert again.stdout == f"The local admin key is in {key_file}.\n"
    assert key_file.read_bytes() == first
    assert key_count(empty_db) == 1


async def test_bootstrap_on_a_store_with_keys_makes_nothing(il6: Cli, db: Engine, tmp_path: Path) -> None:
    await create(il6, unique_name())
    before = key_count(db)
    key_file = tmp_path / "local-admin-key"

    run = await bootstrap(il6.database_url, tmp_path, key_file)

    assert run.code == 0, run.stderr
    assert "has API keys already" in run.stdout
    assert not key_file.exists()
    assert key_count(db) == before


async def test_bootstrap_is_refused_in_production(
    postgresql_url: str, postgresql_db: Engine, tmp_path: Path
) -> None:
    # Production settings only validate on PostgreSQL with a password that is not a placeholder; the
    # test server trusts loopback logins, so any password connects, and the refusal comes before any.
    url = make_url(postgresql_url).set(password="not-a-placeholder-7Qx")
    production_url = url.render_as_string(hide_password=False)
    before = key_count(postgresql_db)
    key_file = tmp_path / "local-admin-key"

    run = await bootstrap(production_url, tmp_path, key_file, IL6_ENVIRONMENT="production")

    assert run.code == 1
    assert run.stdout == ""
    assert "refused" in run.stderr
    assert "il6 keys create" in run.stderr
    assert not key_file.exists()
    assert key_count(postgresql_db) == before


async def test_production_on_sqlite_fails_before_bootstrapping(
    empty_store: str, empty_db: Engine, tmp_path: Path
) -> None:
    # Production refuses SQLite when the settings are read, before the command can refuse on its own.
    key_file = tmp_path / "local-admin-key"

    run = await bootstrap(empty_store, tmp_path, key_file, IL6_ENVIRONMENT="production")

    assert run.code == 1
    assert "production runs on PostgreSQL" in run.stderr
    assert not key_file.exists()
    assert key_count(empty_db) == 0


async def test_bootstrap_over_an_existing_lax_file_leaves_it_0600(empty_store: str, tmp_path: Path) -> None:
    key_file = tmp_path / "local-admin-key"
    key_file.write_text("a key of a store since deleted\n", encoding="utf-8")
    key_file.chmod(0o644)

    run = await bootstrap(empty_store, tmp_path, key_file)

    assert run.code == 0, run.stderr
    assert API_KEY.fullmatch(key_file.read_text(encoding="utf-8").strip())
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_a_bootstrap_that_cannot_write_the_key_leaves_the_store_empty(
    empty_store: str, empty_db: Engine, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("", encoding="utf-8")

    failed = await bootstrap(empty_store, tmp_path, blocked / "local-admin-key")
    retried = await bootstrap(empty_store, tmp_path, tmp_path / "local-admin-key")

    assert failed.code != 0
    assert retried.code == 0, retried.stderr
    assert (tmp_path / "local-admin-key").is_file()
    assert key_count(empty_db) == 1
