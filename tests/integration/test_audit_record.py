"""What the audit row holds, and what replay says when a record or a version has changed."""

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text

from app.domain.classifiers.manifest import manifest_digest
from app.domain.classifiers.registry import bundled_definitions
from app.settings import Environment, Settings
from tests.factories import assessment_body
from tests.integration.conftest import app_client, tampered_decision


async def test_row_holds_the_normalised_input_and_the_decision_stamped_by_the_database(
    client: httpx.AsyncClient, db: Engine
) -> None:
    body = assessment_body(value=0.02, unit="ng/mL", comparator=None)
    with db.connect() as connection:
        before = connection.execute(text("SELECT max(seq) FROM assessment")).scalar()

    response = await client.post(
        "/v1/assessments", content=json.dumps(body), headers={"content-type": "application/json"}
    )

    assert response.status_code == 201
    decision = response.json()
    with db.connect() as connection:
        row = connection.execute(
            text("SELECT seq, input, decision, recorded_at FROM assessment WHERE subject_id = :s"),
            {"s": body["subject_id"]},
        ).one()
    stored_input = row.input if isinstance(row.input, dict) else json.loads(row.input)
    stored_decision = row.decision if isinstance(row.decision, dict) else json.loads(row.decision)
    assert stored_input == {
        "subject_id": body["subject_id"],
        "site_id": "PIT",
        "il6": {"value": "0.02", "unit": "ng/mL", "comparator": None, "assay": "elecsys-il6"},
        "specimen": {"type": "serum", "collected_at": "2026-11-20T09:30:00+00:00"},
        "classifier": None,
    }
    assert stored_decision["il6"]["pg_per_ml"] == "20"
    assert stored_decision["risk"]["cutoff_pg_per_ml"] == "17.85"
    assert stored_decision["eligibility"] == decision["eligibility"]
    assert stored_decision["risk"]["group"] == decision["risk"]["group"] == "high"
    assert stored_decision["classifier"] == decision["classifier"]
    assert before is None or row.seq > before


async def test_recorded_at_comes_from_the_database_clock(client: httpx.AsyncClient, db: Engine) -> None:
    with db.connect() as connection:
        before = connection.execute(text("SELECT CURRENT_TIMESTAMP")).scalar_one()

    response = await client.post(
        "/v1/assessments",
        content=json.dumps(assessment_body()),
        headers={"content-type": "application/json"},
    )

    with db.connect() as connection:
        after = connection.execute(text("SELECT CURRENT_TIMESTAMP")).scalar_one()
    recorded = datetime.fromisoformat(response.json()["recorded_at"])
    as_naive_utc = recorded.replace(tzinfo=None)
    low = before if isinstance(before, datetime) else datetime.fromisoformat(before)
    high = after if isinstance(after, datetime) else datetime.fromisoformat(after)
    if low.tzinfo is not None:
        assert low <= recorded <= high
    else:  # SQLite's CURRENT_TIMESTAMP is naive UTC, to the second
        assert low <= as_naive_utc.replace(microsecond=0) <= high


async def test_replay_reports_a_record_that_no_longer_matches(client: httpx.AsyncClient, db: Engine) -> None:
    body = assessment_body(value=1.0, comparator=None)
    created = await client.post(
        "/v1/assessments", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert created.status_code == 201

    # The database owner changes the recorded answer behind the service's back.
    def to_ineligible(decision: dict[str, Any]) -> None:
        decision["eligibility"]["status"] = "ineligible"

    with tampered_decision(db, created.json()["id"], to_ineligible):
        replay = await client.post(f"{created.headers['location']}/replay")

    assert replay.status_code == 200
    assert replay.json()["matches"] is False
    assert replay.json()["recorded"]["eligibility"]["status"] == "ineligible"
    assert replay.json()["replayed"]["eligibility"]["status"] == "eligible"


async def test_an_edited_copy_of_a_released_version_does_not_replace_the_stored_one(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    created = await client.post(
        "/v1/assessments",
        content=json.dumps(assessment_body()),
        headers={"content-type": "application/json"},
    )
    assert created.status_code == 201
    # A registry directory in which 1.0.0 was edited and re-pinned: the store keeps what decided.
    definitions = tmp_path / "definitions"
    shutil.copytree(str(bundled_definitions()), definitions)
    manifest_path = definitions / "il6-enrichment" / "1.0.0" / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["limitations"].append("edited after release")
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    index_path = definitions / "registry.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    index["classifiers"][0]["digest"] = manifest_digest(manifest)
    index_path.write_text(json.dumps(index), encoding="utf-8")
    settings = Settings(
        database_url=SecretStr(database_url), environment=Environment.TEST, classifier_dir=definitions
    )

    async for other in app_client(settings):
        replay = await other.post(f"{created.headers['location']}/replay")
        served = (await other.get("/v1/classifiers/il6-enrichment/1.0.0")).json()

        assert replay.status_code == 200, replay.text
        assert replay.json()["matches"] is True
        assert served["digest"] == created.json()["classifier"]["digest"]
        assert "edited after release" not in served["limitations"]
    assert "the bundled definition differs from the stored one" in caplog.text


@pytest.mark.parametrize(
    ("ref", "digest"),
    [("il6-enrichment@1.0.0", "sha256:0287b72b42a0877bc2bfcacf3112d1853ef1c20d21ce83b0b25d5c41059795d7")],
)
async def test_released_versions_keep_their_digest(client: httpx.AsyncClient, ref: str, digest: str) -> None:
    # A released version is immutable: editing its manifest needs a new version, not a new digest.
    name, version = ref.split("@")
    detail = (await client.get(f"/v1/classifiers/{name}/{version}")).json()

    assert detail["digest"] == digest
