"""Every knob the service has, read once from the environment (prefix ``IL6_``) and checked at start-up."""

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url

DEFAULT_DATABASE_URL = "sqlite:///./var/il6.sqlite3"
PLACEHOLDER_PASSWORDS = frozenset({"il6-development-only", "postgres", "password", "changeme"})
"""Passwords that only a development set-up may use (the first is docker-compose.yml's default)."""


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IL6_", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT
    database_url: SecretStr = Field(
        default=SecretStr(DEFAULT_DATABASE_URL),
        validation_alias=AliasChoices("IL6_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db.",
    )
    database_role: str | None = Field(
        default="il6_app",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL role the service acts as (SELECT and INSERT only on the audit trail); "
        "unset to act as the connecting user.",
    )
    client_id: str = Field(
        default="unidentified",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="Who the audit trail names as caller when a request carries no X-Client-ID header.",
    )
    idempotency_key_ttl_hours: int = Field(
        default=24, ge=24, le=24 * 365, description="How long an Idempotency-Key stays bound to its decision."
    )
    signing_key_file: Path = Field(
        default=Path("var/audit-signing-key.pem"),
        description="Ed25519 private key (PKCS#8 PEM) that signs audit checkpoints; created outside "
        "production when missing.",
    )
    checkpoint_file: Path | None = Field(
        default=Path("var/audit-checkpoints.jsonl"),
        description="Signed checkpoints are appended here (one JSON object per line) and logged.",
    )
    checkpoint_interval_s: float = Field(
        default=300, ge=0, le=86_400, description="Seconds between written checkpoints; 0 writes none."
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    db_statement_timeout_ms: int = Field(default=5000, ge=100, le=600_000)
    db_transaction_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="A decision's whole database transaction must finish in this time, else 503 (the "
        "driver then takes up to a few more seconds to cancel the query and drop the connection).",
    )
    db_idle_in_transaction_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        le=600_000,
        description="PostgreSQL ends a transaction whose client is silent this long (releasing its locks).",
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, le=16 * 1024 * 1024, description="Larger request bodies get 413."
    )
    classifier_dir: Path | None = Field(
        default=None, description="A classifier registry directory; the bundled one when unset."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database_role", "checkpoint_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """An empty variable (IL6_DATABASE_ROLE=) switches the feature off."""
        return None if value == "" else value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.get_secret_value().startswith("sqlite")

    @model_validator(mode="after")
    def _production_is_safe(self) -> "Settings":
        if self.environment is not Environment.PRODUCTION:
            return self
        if self.is_sqlite:
            raise ValueError("production runs on PostgreSQL: set DATABASE_URL=postgresql+psycopg://...")
        if make_url(self.database_url.get_secret_value()).password in PLACEHOLDER_PASSWORDS:
            raise ValueError("production refuses a placeholder database password: set a real one")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
