"""Every knob the service has, read once from the environment (prefix ``IL6_``) and checked at start-up."""

import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url

DEFAULT_DATABASE_URL = "sqlite:///./var/il6.sqlite3"
PLACEHOLDER_PASSWORDS = frozenset(
    {"il6-development-only", "il6-service-development-only", "postgres", "password", "changeme"}
)
"""Passwords that only a development set-up may use (the first two are docker-compose.yml's defaults)."""


DEFAULT_FHIR_SUBJECT_SYSTEM = "urn:il6-eligibility:subject"
"""A placeholder: each deployment sets IL6_FHIR_SUBJECT_SYSTEM to the system its sites use for the trial's
pseudonymous subject ids."""


ASYMMETRIC_JWT_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""The token signature algorithms a deployment may accept."""


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


MIN_PRODUCTION_SECRET_LENGTH = 32
"""The shortest IL6_REDCAP_TRIGGER_SECRET production accepts (``openssl rand -hex 32`` gives 64)."""
URL_SAFE_SECRET = re.compile(r"[A-Za-z0-9._~-]+")
"""A trigger secret travels in a URL's query: URL-safe characters only, so it never needs encoding."""

REDCAP_NAME = r"^[a-z][a-z0-9_]{0,99}$"
RedcapName = Annotated[str, StringConstraints(pattern=REDCAP_NAME)]
"""A REDCap field or instrument name: lowercase letters, digits and underscores."""


class RedcapFields(BaseModel):
    """IL6_REDCAP_FIELDS: the REDCap field that holds each input (JSON; keys left out keep these defaults).

    ``site_id`` null: no site is recorded; ``redcap_data_access_group``: the record's data access group.
    ``comparator`` null: the project records exact values only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    record_id: RedcapName = "record_id"
    subject_id: RedcapName = "record_id"
    site_id: RedcapName | None = None
    value: RedcapName = "il6_value"
    unit: RedcapName = "il6_unit"
    comparator: RedcapName | None = "il6_comparator"
    assay: RedcapName = "il6_assay"
    specimen_type: RedcapName = "il6_specimen_type"
    collected_at: RedcapName = "il6_collected_at"


class RedcapWriteBack(BaseModel):
    """IL6_REDCAP_WRITE_BACK: the REDCap field each part of a decision is written to (JSON; null: not
    written)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eligibility: RedcapName | None = None
    risk_group: RedcapName | None = None
    assessment_id: RedcapName | None = None
    classifier: RedcapName | None = None


class Settings(BaseSettings):
    # A validation error must not print the input: it holds secrets (API tokens, database passwords).
    model_config = SettingsConfigDict(
        env_prefix="IL6_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

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
    batch_max_items: int = Field(
        default=1000, ge=1, le=100_000, description="Most results one POST /v1/assessments/batch may hold."
    )
    max_batch_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Larger batch request bodies get 413 (the body is held in memory while it is decided).",
    )
    study_id: str = Field(
        default="NCT01488318",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="The study identifier the SDTM LB export writes as STUDYID.",
    )
    fhir_subject_system: str = Field(
        default=DEFAULT_FHIR_SUBJECT_SYSTEM,
        pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$",
        description="The identifier system (a URI) under which sites give the trial's pseudonymous subject "
        "id in FHIR (Observation.subject.identifier, or an identifier of the Patient it references); the "
        "default is a placeholder each deployment replaces with its own.",
    )
    classifier_dir: Path | None = Field(
        default=None, description="A classifier registry directory; the bundled one when unset."
    )
    classifier_refresh_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How often each process checks the store for classifier lifecycle changes made by "
        "another process (an activation, say); a change made by the process itself applies at once.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="Log lines as JSON objects (one per line) or as text; auto: text when standard error "
        "is a terminal, else JSON.",
    )

    # Access: API keys always; OIDC bearer tokens (client credentials) when an issuer is configured.
    local_admin_key_file: Path = Field(
        default=Path("var/local-admin-key"),
        description="Where `il6 keys bootstrap` (run by `make run`) writes the local admin key it creates "
        "on first start; development only.",
    )
    rate_limit_per_minute: int = Field(
        default=3000,
        ge=0,
        le=1_000_000,
        description="Requests each caller (key or token client) may make per minute, per server process; "
        "0: no limit. Past it: 429 with Retry-After.",
    )
    rate_limit_burst: int = Field(
        default=300, ge=1, le=100_000, description="Requests a caller may make at once (the bucket's size)."
    )
    cors_allow_origins: list[str] = Field(
        default_factory=list,
        description="JSON list of browser origins allowed to call the API (CORS); empty: CORS is off.",
    )
    metrics_public: bool = Field(
        default=False,
        description="Serve /metrics without credentials (for a scraper on a private network); else it "
        "needs a credential with the read scope for every site.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="Issuer (iss) of accepted OAuth2/OIDC access tokens; unset: only API keys are accepted.",
    )
    oidc_audience: str | None = Field(
        default=None, description="The audience (aud) accepted tokens must name: this service's identifier."
    )
    oidc_jwks_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="Where the issuer publishes its signing keys (JWKS); https in production.",
    )
    oidc_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"],
        description="JSON list of accepted signature algorithms; asymmetric only (RS256/384/512, "
        "PS256/384/512, ES256/384/512, EdDSA).",
    )
    oidc_scope_prefix: str = Field(
        default="",
        max_length=200,
        description="Prefix of this service's scopes in the token's scope claim (e.g. api://il6/ makes "
        "api://il6/assess the assess scope).",
    )
    oidc_sites_claim: str = Field(
        default="il6_sites",
        pattern=r"^[A-Za-z0-9_.:/-]{1,100}$",
        description='Claim listing the sites a token may act for (a list, or "*" for every site); a token '
        "without it may act for no site.",
    )
    oidc_jwks_cache_s: int = Field(
        default=300, ge=0, le=86_400, description="Seconds the issuer's keys are kept before fetching again."
    )
    oidc_leeway_s: int = Field(
        default=30, ge=0, le=300, description="Clock skew allowed when checking exp, nbf and iat."
    )

    # The REDCap Data Entry Trigger receiver (POST /v1/redcap/data-entry-trigger): off without an API URL.
    redcap_api_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="The REDCap API endpoint records are read from and written to, e.g. "
        "https://redcap.example.org/api/ (https in production); unset: the receiver is off (404).",
    )
    redcap_api_token: SecretStr | None = Field(
        default=None,
        description="The project's API token: export rights, and import rights for write-back.",
    )
    redcap_trigger_secret: SecretStr | None = Field(
        default=None,
        description="The secret REDCap's Data Entry Trigger URL carries as ?secret=...; a trigger without "
        "it is 401. Required with the API URL; at least 32 characters in production.",
    )
    redcap_project_id: int | None = Field(
        default=None, ge=1, description="The only REDCap project whose triggers are accepted."
    )
    redcap_instrument: str = Field(
        default="il6_result",
        pattern=REDCAP_NAME,
        description="The instrument whose saving as Complete has the record scored.",
    )
    redcap_fields: RedcapFields = Field(
        default_factory=RedcapFields,
        description="JSON: the REDCap field holding each input; keys left out keep their defaults.",
    )
    redcap_write_back: RedcapWriteBack | None = Field(
        default=None,
        description="JSON: the REDCap fields the decision is written back to; unset or {}: not written.",
    )
    redcap_timezone: str | None = Field(
        default=None,
        description="IANA time zone of the project's local date-times (REDCap stores them without an "
        "offset); unset: collected_at must carry a UTC offset.",
    )
    redcap_timeout_s: float = Field(
        default=10.0, gt=0, le=60, description="Seconds to wait for each REDCap API call."
    )

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
        if self.database_role is None:
            raise ValueError("production acts as the audit role: IL6_DATABASE_ROLE may not be empty")
        return self

    @field_validator(
        "redcap_api_url",
        "redcap_api_token",
        "redcap_trigger_secret",
        "redcap_project_id",
        "redcap_write_back",
        "redcap_timezone",
        mode="before",
    )
    @classmethod
    def _redcap_empty_is_none(cls, value: object) -> object:
        """An empty variable (IL6_REDCAP_API_URL=, IL6_REDCAP_WRITE_BACK={}) is unset."""
        return None if value in ("", {}) else value

    @field_validator("redcap_write_back")
    @classmethod
    def _nothing_to_write_is_none(cls, value: RedcapWriteBack | None) -> RedcapWriteBack | None:
        return None if value is None or not any(value.model_dump().values()) else value

    @field_validator("redcap_timezone")
    @classmethod
    def _known_time_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError("not a time zone known here (an IANA name, e.g. Europe/Paris)") from None
        return value

    @model_validator(mode="after")
    def _redcap_is_complete(self) -> "Settings":
        if self.redcap_api_url is None:
            return self
        token = self.redcap_api_token
        if token is None or not token.get_secret_value().strip():
            raise ValueError("IL6_REDCAP_API_URL needs IL6_REDCAP_API_TOKEN")
        if self.redcap_project_id is None:
            raise ValueError("IL6_REDCAP_API_URL needs IL6_REDCAP_PROJECT_ID")
        if self.redcap_trigger_secret is None:
            raise ValueError("IL6_REDCAP_API_URL needs IL6_REDCAP_TRIGGER_SECRET")
        secret = self.redcap_trigger_secret.get_secret_value()
        if not URL_SAFE_SECRET.fullmatch(secret):
            raise ValueError("IL6_REDCAP_TRIGGER_SECRET may hold only letters, digits and . _ ~ -")
        if self.environment is Environment.PRODUCTION and len(secret) < MIN_PRODUCTION_SECRET_LENGTH:
            raise ValueError(
                f"production needs an IL6_REDCAP_TRIGGER_SECRET of at least {MIN_PRODUCTION_SECRET_LENGTH} "
                "characters"
            )
        if self.environment is Environment.PRODUCTION and not self.redcap_api_url.startswith("https://"):
            raise ValueError("production sends the REDCap API token over https only")
        if self.redcap_write_back is not None:
            read = {name for name in self.redcap_fields.model_dump().values() if name is not None}
            overlap = read & {name for name in self.redcap_write_back.model_dump().values() if name}
            if overlap:
                raise ValueError(f"IL6_REDCAP_WRITE_BACK would overwrite fields it reads: {sorted(overlap)}")
        return self

    @field_validator("oidc_issuer", "oidc_audience", "oidc_jwks_url", mode="before")
    @classmethod
    def _oidc_empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("oidc_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        """RFC 8725 3.1: a fixed list; never none, never an HMAC (whose key would be the public key)."""
        refused = [name for name in value if name not in ASYMMETRIC_JWT_ALGORITHMS]
        if refused or not value:
            raise ValueError(f"accepted algorithms are {sorted(ASYMMETRIC_JWT_ALGORITHMS)}, at least one")
        return value

    @model_validator(mode="after")
    def _oidc_is_complete(self) -> "Settings":
        if self.oidc_issuer is None:
            return self
        if self.oidc_audience is None or self.oidc_jwks_url is None:
            raise ValueError("IL6_OIDC_ISSUER needs IL6_OIDC_AUDIENCE and IL6_OIDC_JWKS_URL")
        if self.environment is Environment.PRODUCTION and not self.oidc_jwks_url.startswith("https://"):
            raise ValueError("production fetches the issuer's keys over https only")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
