"""What a caller limited to some sites cannot infer of the others: from the SDTM export's numbering, from a
correction moved to another site, and public paths that stay public behind a proxy's prefix."""

import asyncio
import csv
import io
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from app.main import create_app
from app.settings import Environment, Settings
from tests.factories import assessment_body, subject_id
from tests.integration.conftest import key_headers
from tests.integration.test_access import assert_problem, decide


async def test_the_sdtm_numbering_counts_only_the_decisions_the_reader_may_see(
    client: httpx.AsyncClient,
) -> None:
    pit, bos = await key_headers(client, sites=["PIT"]), await key_headers(client, sites=["BOS"])
    subject = subject_id()
    for _ in range(2):
        await decide(client, bos, subject=subject, site_id="BOS")
    await decide(client, pit, subject=subject, site_id="PIT")

    def numbers(export: httpx.Response) -> list[str]:
        return [row["LBSEQ"] for row in csv.DictReader(io.StringIO(export.text)) if row["USUBJID"] == subject]

    assert numbers(await client.get("/v1/exports/sdtm-lb.csv", headers=pit)) == ["1"]
    assert numbers(await client.get("/v1/exports/sdtm-lb.csv")) == ["1", "2", "3"]  # every site


async def test_a_correction_stays_at_the_site_of_the_decision_it_corrects(client: httpx.AsyncClient) -> None:
    both = await key_headers(client, sites=["PIT", "BOS"])
    original = await decide(client, both, site_id="PIT")
    moved = assessment_body(subject=original["subject_id"], site_id="BOS", value=3, comparator=None)
    moved |= {"supersedes": original["id"], "correction_reason": "Re-reported by the laboratory."}

    refused = await client.post("/v1/assessments", json=moved, headers=both)

    assert_problem(refused, 422, "validation-error")
    assert [error["pointer"] for error in refused.json()["errors"]] == ["/site_id"]
    assert (await client.get(f"/v1/assessments/{original['id']}")).json()["superseded_by"] is None


@pytest.fixture
async def behind_a_prefix(sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app as a proxy serving it under /il6 presents it: ``root_path`` set, paths carrying the prefix."""
    app = create_app(Settings(database_url=SecretStr(sqlite_url), environment=Environment.TEST))
    transport = httpx.ASGITransport(app=app, root_path="/il6")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


async def test_public_paths_stay_public_and_the_rest_protected_behind_a_prefix(
    behind_a_prefix: httpx.AsyncClient,
) -> None:
    public = ("/il6/healthz", "/il6/readyz", "/il6/openapi.json", "/il6/problems/unauthenticated")
    answers = await asyncio.gather(*(behind_a_prefix.get(path) for path in public))

    assert [answer.status_code for answer in answers] == [200] * len(public)
    assert (await behind_a_prefix.get("/il6/v1/classifiers")).status_code == 401
