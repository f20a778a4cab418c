"""The deployed start-up path, end to end: migrate, serve, decide over HTTP, shut down on SIGTERM."""

from pathlib import Path
from typing import Any

from tests.e2e.conftest import Backend, create_key, migrate, running_server
from tests.factories import subject_id

PROBLEM_JSON = "application/problem+json"
CLASSIFIER = "il6-enrichment@1.0.0"


def _submission(subject: str) -> dict[str, Any]:
    return {
        "subject_id": subject,
        "site_id": "PIT",
        "il6": {"value": 1.5, "unit": "pg/mL", "comparator": "<", "assay": "elecsys-il6"},
        "specimen": {"type": "serum", "collected_at": "2026-11-20T09:30:00Z"},
    }


def test_migrated_server_decides_over_http_and_stops_cleanly(
    backend: Backend, workdir: Path, tmp_path: Path
) -> None:
    migrate(backend, workdir)
    api_key = create_key(backend, workdir, scopes="assess,read", sites="PIT")
    subject = subject_id("E2E")

    with running_server(backend, workdir, tmp_path, api_key) as server:
        assert server.wait_ready().json() == {"status": "ready"}
        with server.client() as client:
            client.headers.pop("Authorization")
            unauthenticated = client.post("/v1/assessments", json=_submission(subject))
            assert unauthenticated.status_code == 401, unauthenticated.text
            assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
            assert unauthenticated.headers["x-content-type-options"] == "nosniff"
            assert "server" not in unauthenticated.headers  # the software is not announced

        with server.client() as client:
            created = client.post("/v1/assessments", json=_submission(subject))
            assert created.status_code == 201, created.text
            assert created.headers["content-type"].startswith("application/json")
            assert created.headers["classifier-version"] == CLASSIFIER
            decision = created.json()
            assert decision["subject_id"] == subject
            assert decision["eligibility"]["status"] == "eligible"
            assert decision["risk"]["group"] == "low"
            location = created.headers["location"]
            assert location == f"/v1/assessments/{decision['id']}"

            read = client.get(location)
            assert read.status_code == 200, read.text
            assert read.headers["classifier-version"] == CLASSIFIER
            assert read.json() == decision

            listed = client.get(f"/v1/subjects/{subject}/assessments")
            assert listed.status_code == 200, listed.text
            assert listed.json()["items"] == [decision]

            invalid = _submission(subject)
            invalid["il6"]["value"] = "abc"
            refused = client.post("/v1/assessments", json=invalid)
            assert refused.status_code == 422, refused.text
            assert refused.headers["content-type"].startswith(PROBLEM_JSON)
            problem = refused.json()
            assert problem["status"] == 422
            assert any(error.get("pointer") == "/il6/value" for error in problem["errors"])
            assert "abc" not in refused.text  # problems never echo the submitted input

        server.stop_cleanly()


def test_server_is_not_ready_on_an_unmigrated_database(workdir: Path, tmp_path: Path) -> None:
    database = tmp_path / "unmigrated.sqlite3"
    database.touch()
    backend = Backend("sqlite", f"sqlite:///{database}", "test", tmp_path)

    with running_server(backend, workdir, tmp_path) as server:
        server.wait_for("/healthz", lambda response: response.status_code == 200)
        with server.client() as client:
            readiness = client.get("/readyz")
        assert readiness.status_code == 503, readiness.text
        assert readiness.headers["content-type"].startswith(PROBLEM_JSON)
        assert readiness.json()["status"] == 503

        server.stop_cleanly()
