"""The model card over HTTP: JSON by default, HTML on request with its own Content-Security-Policy."""

import json
import shutil
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from app.api.cards import CONTENT_SECURITY_POLICY
from app.domain.classifiers.manifest import manifest_digest
from app.domain.classifiers.registry import bundled_definitions
from app.settings import Environment, Settings
from tests.integration.conftest import app_client, fresh_sqlite, key_headers
from tests.unit.test_cards import fitted_manifest

CARD = "/v1/classifiers/il6-enrichment/1.0.0/card"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"


async def test_the_card_is_json_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get(CARD)
    detail = (await client.get("/v1/classifiers/il6-enrichment/1.0.0")).json()

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-security-policy"] == JSON_CSP
    assert response.headers["vary"] == "Accept"
    card = response.json()
    assert (card["name"], card["version"], card["status"], card["default"]) == (
        "il6-enrichment",
        "1.0.0",
        "active",
        True,
    )
    assert card["digest"] == detail["digest"]
    assert card["restriction"]["statement"].startswith("For the dasatinib + cetuximab combination only")
    assert {p["name"]: p["value"] for p in card["parameters"]}["risk.cutoff_pg_per_ml"] == "17.85"
    assert [(a["id"], a["lod_pg_per_ml"]) for a in card["assays"]] == [("elecsys-il6", 1.5)]
    assert card["training"] is None
    assert card["unreadable"] == []


@pytest.mark.parametrize(
    ("query", "accept"), [("?format=html", "application/json"), ("", BROWSER), ("", "text/html")]
)
async def test_the_card_is_a_page_when_asked_for(client: httpx.AsyncClient, query: str, accept: str) -> None:
    response = await client.get(CARD + query, headers={"Accept": accept})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    assert (
        "<title>Model card: Serum IL6 enrichment criterion and IL6 risk group (il6-enrichment@1.0.0)" in page
    )
    assert "For the dasatinib + cetuximab combination only" in page
    assert '<svg xmlns="http://www.w3.org/2000/svg" role="img"' in page
    assert "cutoff 17.85" in page
    assert "LOD 1.5" in page
    assert "<script" not in page


@pytest.mark.parametrize("accept", ["*/*", "application/json", "text/html, application/json"])
async def test_json_wins_unless_html_is_preferred(client: httpx.AsyncClient, accept: str) -> None:
    response = await client.get(CARD, headers={"Accept": accept})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"


async def test_format_json_overrides_a_browser_accept(client: httpx.AsyncClient) -> None:
    response = await client.get(CARD + "?format=json", headers={"Accept": BROWSER})

    assert response.headers["content-type"] == "application/json"


async def test_an_unknown_format_is_a_validation_problem(client: httpx.AsyncClient) -> None:
    response = await client.get(CARD + "?format=pdf")

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_unknown_version_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/classifiers/il6-enrichment/9.9.9/card", headers={"Accept": "text/html"})

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["content-security-policy"] == JSON_CSP


async def test_the_card_needs_a_credential(client: httpx.AsyncClient) -> None:
    request = client.build_request("GET", CARD + "?format=html")
    del request.headers["authorization"]
    response = await client.send(request)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "Model card" not in response.text


async def test_the_card_needs_the_read_scope(client: httpx.AsyncClient) -> None:
    # The training histogram's cells can be small: a key that may only submit results does not see them.
    assessor = await key_headers(client, scopes=("assess",))

    response = await client.get("/v1/classifiers/il6-enrichment/1.0.0/card", headers=assessor)

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_catalog_shows_a_manifest_s_training_cohort_to_the_read_scope_only(
    tmp_path: Path,
) -> None:
    """The card's training histogram is in the version's manifest too: the same rule holds there."""
    directory = tmp_path / "classifiers"
    shutil.copytree(Path(str(bundled_definitions())), directory)
    fitted = fitted_manifest()
    del fitted["artifact"]
    (directory / "il6-enrichment" / "1.1.0").mkdir()
    (directory / "il6-enrichment" / "1.1.0" / "manifest.json").write_text(json.dumps(fitted))
    listing = json.loads((directory / "registry.json").read_text())
    listing["classifiers"].append(
        {"name": "il6-enrichment", "version": "1.1.0", "status": "retired", "digest": manifest_digest(fitted)}
    )
    (directory / "registry.json").write_text(json.dumps(listing))
    settings = Settings(
        database_url=SecretStr(fresh_sqlite(tmp_path)), environment=Environment.TEST, classifier_dir=directory
    )
    async for client in app_client(settings):
        assessor = await key_headers(client, scopes=("assess",))
        reader = await key_headers(client, scopes=("read",))
        for_assessor = await client.get("/v1/classifiers/il6-enrichment/1.1.0", headers=assessor)
        for_reader = await client.get("/v1/classifiers/il6-enrichment/1.1.0", headers=reader)

    assert for_assessor.status_code == for_reader.status_code == 200
    assert for_reader.json()["manifest"] == fitted  # all of it: it hashes to the digest shown
    assert for_assessor.json()["manifest"] == {k: v for k, v in fitted.items() if k != "training"}
