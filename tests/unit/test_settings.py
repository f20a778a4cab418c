"""Settings fail fast on what production must never run with."""

import re
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from app.settings import Environment, Settings


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///./var/il6.sqlite3",
        "postgresql+psycopg://il6:il6-development-only@db:5432/il6",
        "postgresql+psycopg://il6:changeme@db:5432/il6",
    ],
    ids=["sqlite", "compose-placeholder", "changeme"],
)
def test_production_refuses_unsafe_databases(url: str) -> None:
    with pytest.raises(ValidationError):
        Settings(database_url=SecretStr(url), environment=Environment.PRODUCTION)


def test_production_accepts_a_real_password_and_hides_it() -> None:
    settings = Settings(
        database_url=SecretStr("postgresql+psycopg://il6:s3cr3t-Xq9@db:5432/il6"),
        environment=Environment.PRODUCTION,
    )

    assert "s3cr3t-Xq9" not in repr(settings)
    assert settings.database_url.get_secret_value().endswith("@db:5432/il6")


def test_development_may_use_the_placeholder() -> None:
    settings = Settings(database_url=SecretStr("postgresql+psycopg://il6:il6-development-only@db/il6"))

    assert settings.environment is Environment.DEVELOPMENT


def test_log_level_must_be_a_level() -> None:
    with pytest.raises(ValidationError):
        Settings(log_level="LOUD")  # type: ignore[arg-type]


def test_an_empty_role_or_checkpoint_file_switches_them_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IL6_DATABASE_ROLE", "")
    monkeypatch.setenv("IL6_CHECKPOINT_FILE", "")

    settings = Settings()

    assert settings.database_role is None
    assert settings.checkpoint_file is None


@pytest.mark.parametrize("role", ["il6 app", "IL6_APP", "app;drop", "x" * 64])
def test_the_database_role_must_be_a_plain_role_name(role: str) -> None:
    # The role is written into the connection's options: nothing but a plain lowercase name gets there.
    with pytest.raises(ValidationError):
        Settings(database_role=role)


def test_idempotency_keys_are_kept_at_least_a_day() -> None:
    with pytest.raises(ValidationError):
        Settings(idempotency_key_ttl_hours=23)


def test_production_acts_as_the_audit_role() -> None:
    with pytest.raises(ValidationError, match="IL6_DATABASE_ROLE"):
        Settings(
            database_url=SecretStr("postgresql+psycopg://il6_service:s3cr3t-Xq9@db:5432/il6"),
            environment=Environment.PRODUCTION,
            database_role="",
        )


README = Path(__file__).resolve().parents[2] / "README.md"


def env_name(field: str) -> str:
    """The variable a setting is read from: ``IL6_<NAME>``, but the database's URL, read as DATABASE_URL."""
    return "DATABASE_URL" if field == "database_url" else f"IL6_{field.upper()}"


def configuration_table() -> set[str]:
    """Every variable the README's Configuration table names in its first column."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])}


def test_every_setting_has_a_row_in_the_readme() -> None:
    documented = configuration_table()

    missing = sorted(env for env in map(env_name, Settings.model_fields) if env not in documented)

    assert not missing, f"README.md's Configuration table has no row for {missing}"


def test_every_row_of_the_readme_is_a_setting() -> None:
    read = {env_name(field) for field in Settings.model_fields} | {"IL6_DATABASE_URL"}

    assert configuration_table() - read == set()
