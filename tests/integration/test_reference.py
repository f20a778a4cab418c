"""Classifiers, assays, health and the problem-type pages."""

import hashlib

import httpx
import rfc8785


async def test_classifiers_list_the_active_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/classifiers")

    assert response.status_code == 200
    items = response.json()["items"]
    assert [(i["name"], i["version"], i["status"], i["default"]) for i in items] == [
        ("il6-enrichment", "1.0.0", "active", True)
    ]
    assert response.json()["unavailable"] == []


async def test_classifier_detail_has_sourced_parameters_and_a_checkable_digest(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/classifiers/il6-enrichment/1.0.0")

    assert response.status_code == 200
    detail = response.json()
    parameters = {p["name"]: p for p in detail["parameters"]}
    assert parameters["risk.cutoff_pg_per_ml"]["value"] == "17.85"
    assert parameters["risk.cutoff_pg_per_ml"]["unit"] == "pg/mL"
    assert "CT119" in parameters["risk.cutoff_pg_per_ml"]["sources"][0]["citation"]
    assert parameters["eligibility.specimen"]["value"] == "serum"
    assert "NCT01488318" in parameters["eligibility.specimen"]["sources"][0]["citation"]
    assert all(p["sources"] for p in detail["parameters"])
    recomputed = "sha256:" + hashlib.sha256(rfc8785.dumps(detail["manifest"])).hexdigest()
    assert detail["digest"] == recomputed


async def test_unknown_classifier_version_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/classifiers/il6-enrichment/2.0.0")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_assays_list_elecsys_with_its_limit_and_source(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/assays")

    assert response.status_code == 200
    (elecsys,) = response.json()["items"]
    assert elecsys["id"] == "elecsys-il6"
    assert elecsys["classifier"] == "il6-enrichment@1.0.0"
    assert elecsys["lod_pg_per_ml"] == 1.5
    assert elecsys["measuring_range_pg_per_ml"] == [1.5, 5000]
    assert "Roche" in elecsys["sources"][0]["citation"]


async def test_classifier_detail_pins_its_assays_limit_of_detection(client: httpx.AsyncClient) -> None:
    detail = (await client.get("/v1/classifiers/il6-enrichment/1.0.0")).json()

    assert [(a["id"], a["lod_pg_per_ml"]) for a in detail["assays"]] == [("elecsys-il6", 1.5)]
    assert detail["manifest"]["assays"][0]["lod_pg_per_ml"] == "1.5"


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_problem_types_are_documented(client: httpx.AsyncClient) -> None:
    response = await client.get("/problems/audit-store-unavailable")

    assert response.status_code == 200
    assert response.json()["status"] == 503
    assert (await client.get("/problems/nothing")).status_code == 404
