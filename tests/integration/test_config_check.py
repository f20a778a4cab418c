"""``il6 config check --connect`` against real databases: migrated, not migrated, unreachable."""

import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("IL6_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)


def check_connect(database_url: str) -> tuple[int, str]:
    result = runner.invoke(app, ["config", "check", "--connect"], env={"DATABASE_URL": database_url})
    return result.exit_code, result.output


def test_a_migrated_database_passes(database_url: str) -> None:
    code, output = check_connect(database_url)

    assert code == 0, output
    assert "database reachable, at the newest migration" in output


def test_a_database_without_the_migrations_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    sqlite3.connect(path).close()

    code, output = check_connect(f"sqlite:///{path}")

    assert code == 1
    assert "database refused: The database is not at the newest migration." in output


def test_an_unreachable_database_is_refused_without_its_password() -> None:
    password = "s3cr3t-Xq9-unreachable"

    code, output = check_connect(f"postgresql+psycopg://il6:{password}@127.0.0.1:1/il6")

    assert code == 1
    assert "database refused: The database is unreachable." in output
    assert password not in output
