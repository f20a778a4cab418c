"""``il6 config check``: every configuration error by variable, a summary otherwise, never a secret."""

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.service.checkpoints import generate_signing_key

runner = CliRunner()

PASSWORD = "s3cr3t-Xq9-pw"
TOKEN = "A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what each test sets: nothing of the shell's or the test session's configuration."""
    for name in list(os.environ):
        if name.startswith("IL6_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)


def check(*args: str, **env: str) -> tuple[int, str]:
    result = runner.invoke(app, ["config", "check", *args], env=env)
    return result.exit_code, result.output


def test_the_defaults_pass_with_a_summary() -> None:
    code, output = check()

    assert code == 0, output
    assert "configuration ok" in output
    assert "environment:  development" in output
    assert "database:     sqlite:///./var/il6.sqlite3" in output
    assert "OIDC tokens:  off" in output
    assert "REDCap:       off" in output


def test_the_summary_names_the_database_and_integrations_but_no_secret(tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "key.pem")
    code, output = check(
        IL6_SIGNING_KEY_FILE=str(tmp_path / "key.pem"),
        IL6_CHECKPOINT_FILE=str(tmp_path / "checkpoints.jsonl"),
        DATABASE_URL=f"postgresql+psycopg://il6_service:{PASSWORD}@db:5432/il6?password={PASSWORD}",
        IL6_ENVIRONMENT="production",
        IL6_REDCAP_API_URL="https://redcap.example.org/api/",
        IL6_REDCAP_API_TOKEN=TOKEN,
        IL6_REDCAP_TRIGGER_SECRET=TOKEN.lower(),
        IL6_REDCAP_PROJECT_ID="12",
        IL6_OIDC_ISSUER="https://login.example.org/",
        IL6_OIDC_AUDIENCE="api://il6",
        IL6_OIDC_JWKS_URL="https://login.example.org/keys",
        IL6_LOG_FORMAT="json",
    )

    assert code == 0, output
    assert "postgresql+psycopg://il6_service@db:5432/il6, acting as role il6_app" in output
    assert "REDCap:       on (project 12, writes nothing back)" in output
    assert "OIDC tokens:  on (issuer https://login.example.org/)" in output
    assert "logs:         INFO, json" in output
    assert PASSWORD not in output
    assert TOKEN not in output
    assert TOKEN.lower() not in output


def test_every_error_is_named_by_its_variable() -> None:
    code, output = check(
        IL6_DB_POOL_SIZE="0",
        IL6_LOG_FORMAT="yaml",
        IL6_REDCAP_FIELDS='{"value": "Not A Field"}',
    )

    assert code == 1
    assert "configuration refused (3 error(s))" in output
    assert "IL6_DB_POOL_SIZE: Input should be greater than or equal to 1" in output
    assert "IL6_LOG_FORMAT: Input should be 'auto', 'json' or 'text'" in output
    assert "IL6_REDCAP_FIELDS.value: String should match pattern" in output
    assert "yaml" not in output.replace("'auto', 'json' or 'text'", "")  # the message, not the value
    assert "Not A Field" not in output


def test_a_check_across_variables_is_reported_without_the_secret() -> None:
    code, output = check(
        DATABASE_URL="postgresql+psycopg://il6:changeme@db:5432/il6",
        IL6_ENVIRONMENT="production",
    )

    assert code == 1
    assert "settings: Value error, production refuses a placeholder database password" in output
    assert "changeme" not in output.replace("production refuses a placeholder", "")


def test_a_redcap_secret_in_a_refused_configuration_is_not_printed() -> None:
    code, output = check(
        IL6_REDCAP_API_URL="https://redcap.example.org/api/",
        IL6_REDCAP_API_TOKEN=TOKEN,
        IL6_REDCAP_TRIGGER_SECRET=f"{TOKEN} with spaces",
        IL6_REDCAP_PROJECT_ID="12",
    )

    assert code == 1
    assert "IL6_REDCAP_TRIGGER_SECRET may hold only letters, digits" in output
    assert TOKEN not in output


def test_a_value_that_is_not_json_is_named() -> None:
    code, output = check(IL6_CORS_ALLOW_ORIGINS=f"https://a.example,{TOKEN}")

    assert code == 1
    assert "IL6_CORS_ALLOW_ORIGINS: not valid JSON" in output
    assert TOKEN not in output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"mysql://il6:{PASSWORD}@db/il6", "DATABASE_URL must be postgresql+psycopg://... or sqlite:///..."),
        (f"not a url {PASSWORD}", "DATABASE_URL: not a database URL"),
    ],
    ids=["other-backend", "garbage"],
)
def test_a_database_url_the_service_cannot_use_is_refused(url: str, message: str) -> None:
    code, output = check(DATABASE_URL=url)

    assert code == 1
    assert message in output
    assert PASSWORD not in output


def test_connect_refuses_a_missing_sqlite_file_without_making_one(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "il6.sqlite3"

    code, output = check("--connect", DATABASE_URL=f"sqlite:///{path}")

    assert code == 1
    assert "configuration ok" in output
    assert "database refused: The database file does not exist" in output
    assert not path.parent.exists()


def test_production_without_its_signing_key_is_refused_as_start_up_would_be(tmp_path: Path) -> None:
    code, output = check(
        DATABASE_URL=f"postgresql+psycopg://il6_service:{PASSWORD}@db:5432/il6",
        IL6_ENVIRONMENT="production",
        IL6_SIGNING_KEY_FILE=str(tmp_path / "missing.pem"),
        IL6_CHECKPOINT_FILE=str(tmp_path / "checkpoints.jsonl"),
    )

    assert code == 1
    assert "start-up would be refused" in output
    assert "IL6_SIGNING_KEY_FILE: SigningKeyMissing" in output
    assert PASSWORD not in output


def test_a_broken_classifier_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "registry.json").write_text('{"default": "nothing", "classifiers": []}', encoding="utf-8")

    code, output = check(IL6_CLASSIFIER_DIR=str(tmp_path))

    assert code == 1
    assert "IL6_CLASSIFIER_DIR: ClassifierDefinitionError" in output
