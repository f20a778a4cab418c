"""The command line's classifier check, on the bundled registry and on a tampered copy."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.domain.classifiers.registry import bundled_definitions

runner = CliRunner()


def test_verify_accepts_the_bundled_registry() -> None:
    result = runner.invoke(app, ["classifiers", "verify"])

    assert result.exit_code == 0, result.output
    assert "ok       il6-enrichment@1.0.0  active" in result.output


def test_verify_refuses_a_tampered_manifest(tmp_path: Path) -> None:
    copy = tmp_path / "definitions"
    shutil.copytree(str(bundled_definitions()), copy)
    manifest_path = copy / "il6-enrichment" / "1.0.0" / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["assays"][0]["lod_pg_per_ml"] = "2.63"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")

    result = runner.invoke(app, ["classifiers", "verify", str(copy)])

    assert result.exit_code == 1
    assert "registry refused" in result.output
    assert "il6-enrichment has no verified active version" in result.output
    assert "il6-enrichment@1.0.0 rejected: ClassifierDefinitionError: digest mismatch" in result.output


def test_openapi_command_prints_the_document(caplog: pytest.LogCaptureFixture) -> None:
    result = runner.invoke(app, ["openapi"])

    assert result.exit_code == 0
    assert json.loads(result.output)["info"]["title"] == "IL6 eligibility service"
    # Its throwaway signing key is not logged as if an audit signing key had been created.
    assert [record.getMessage() for record in caplog.records if "signing key" in record.getMessage()] == []
