"""Settings fail fast on what production must never run with."""

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
