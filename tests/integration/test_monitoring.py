"""The monitoring service and its page (GET /ui) on both databases: counts, IL6 values, reasons, the
newest decisions and the chain, within the caller's sites.

The session's databases are shared with other tests, so each test decides for sites of its own and reads
as a caller limited to them; only the every-site view (the chain) sees everyone's decisions.
"""

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.api.ui_page import CONTENT_SECURITY_POLICY
from app.domain.access import ALL_SITES, Scope, SiteAccess
from app.main import create_app
from app.service.audit import CheckpointPublisher
from app.service.monitoring import CENSORED, EXACT, MonitoringService
from app.settings import Environment, Settings
from tests.factories import assessment_body, subject_id
from tests.integration.conftest import bearer, key_headers

DECISIONS: Sequence[tuple[dict[str, Any], str]] = (
    ({"value": 0.8, "comparator": None}, "eligible"),
    ({"value": 1.5, "comparator": "<"}, "eligible"),
    ({"value": 5, "comparator": None}, "ineligible"),
    ({"value": 40, "comparator": None}, "ineligible"),
    ({"value": 20, "comparator": "<"}, "indeterminate"),  # a limit above the LOD: either side of it
    ({"value": 3, "comparator": None, "specimen_type": "plasma"}, "indeterminate"),
)
"""One site's decisions: IL6 values in pg/mL, and the outcome each must get."""


@dataclass(frozen=True)
class Served:
    """An app serving the monitoring page, a client holding a key with every scope for every site, and the
    monitoring service the page reads through."""

    app: FastAPI
    client: httpx.AsyncClient
    monitoring: MonitoringService
    settings: Settings


@asynccontextmanager
async def serving_ui(settings: Settings) -> AsyncIterator[Served]:
    """As ``app_client`` (tests/integration/conftest.py), for an app that serves the monitoring page."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        new = await app.state.services.keys.create(
            f"tests-{uuid.uuid4().hex[:12]}", frozenset(Scope), ALL_SITES, created_by="tests"
        )
        client.headers.update(bearer(new.secret))
        yield Served(app, client, app.state.services.monitoring, settings)


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    """The page on the session's database, signing checkpoints into a log of this test's own (the
    session's log holds checkpoints of the other database's chain too)."""
    settings = Settings(
        database_url=SecretStr(database_url),
        environment=Environment.TEST,
        signing_key_file=tmp_path / "audit-signing-key.pem",
        checkpoint_file=tmp_path / "audit-checkpoints.jsonl",
    )
    async with serving_ui(settings) as served:
        yield served


def new_site() -> str:
    return f"MON-{uuid.uuid4().hex[:10]}"


async def decide(
    client: httpx.AsyncClient, site: str, cases: Sequence[tuple[dict[str, Any], str]]
) -> list[str]:
    """Decide each case for ``site``; the subject ids, in the order decided."""
    subjects = []
    for fields, outcome in cases:
        subjects.append(subject_id("MON"))
        response = await client.post(
            "/v1/assessments", json=assessment_body(subject=subjects[-1], site_id=site, **fields)
        )
        assert response.status_code == 201, response.text
        assert response.json()["eligibility"]["status"] == outcome
    return subjects


async def test_the_overview_counts_a_sites_decisions(
    served: Served,
) -> None:
    client, monitoring = served.client, served.monitoring
    site, other = new_site(), new_site()
    subjects = await decide(client, site, DECISIONS)
    await decide(client, other, DECISIONS[:2])

    overview = await monitoring.overview(SiteAccess(frozenset({site})))

    assert overview.days == 30
    assert len(overview.by_outcome.days) == 30
    assert overview.by_outcome.days[-1] == overview.generated_at.date()
    assert {s.label: s.total for s in overview.by_outcome.series} == {
        "eligible": 2,
        "ineligible": 2,
        "indeterminate": 2,
    }
    assert [(s.label, s.total) for s in overview.by_site.series] == [(site, 6)]
    histogram = overview.il6
    assert histogram.sampled == 5  # serum results only: the plasma one is not drawn against serum lines
    assert not histogram.limited
    assert histogram.zero == 0
    assert {s.label: s.total for s in histogram.series} == {EXACT: 3, CENSORED: 2}
    # 0.8 to 40 pg/mL and the lines at 1.5 and 17.85: from 0.1 to 100 pg/mL, a bin a quarter decade wide.
    assert (histogram.lo, histogram.hi, len(histogram.edges)) == (-1, 2, 13)
    assert [(line.kind, line.pg_per_ml) for line in overview.lines] == [
        ("cutoff", Decimal("17.85")),
        ("lod", Decimal("1.5")),
    ]
    assert (overview.indeterminate.decisions, overview.indeterminate.indeterminate) == (6, 2)
    assert dict(overview.indeterminate.reasons) == {"SPECIMEN_NOT_SERUM": 1, "IL6_CENSORED_ABOVE_LOD": 1}
    assert [d.subject_id for d in overview.recent] == subjects[::-1]
    assert {d.site_id for d in overview.recent} == {site}
    assert dict(overview.classifier.usage) == {"il6-enrichment@1.0.0": 6}
    assert overview.classifier.active_version == "1.0.0"
    assert overview.classifier.lifecycle is not None
    assert overview.classifier.lifecycle.active() == "1.0.0"
    assert overview.chain is None  # the chain spans sites


async def test_a_caller_of_every_site_sees_the_chain_head_and_last_checkpoint(served: Served) -> None:
    await decide(served.client, new_site(), DECISIONS[:1])
    before = await served.monitoring.overview(ALL_SITES)
    publisher = CheckpointPublisher(served.app.state.services.audit, served.settings.checkpoint_file, 0)
    checkpoint = await publisher.publish()
    await decide(served.client, new_site(), DECISIONS[:1])

    after = await served.monitoring.overview(ALL_SITES)

    assert before.chain is not None
    assert before.chain.checkpoint is None
    assert before.chain.checkpoint_log == served.settings.checkpoint_file
    assert checkpoint is not None
    assert checkpoint.seq == before.chain.head.seq
    assert after.chain is not None
    assert after.chain.checkpoint == checkpoint
    assert after.chain.head.seq == checkpoint.seq + 1
    assert after.recent[0].seq == after.chain.head.seq
    assert after.by_outcome.total >= 2
    assert len(after.recent) <= 20


async def test_the_page_shows_a_restricted_caller_its_sites_only(
    served: Served,
) -> None:
    client = served.client
    site, other = new_site(), new_site()
    mine = await decide(client, site, DECISIONS[:3])
    theirs = await decide(client, other, DECISIONS[:2])
    reader = await key_headers(client, scopes=("read",), sites=[site])

    response = await client.get("/ui", headers=reader)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    assert all(subject in page for subject in mine)
    assert not any(subject in page for subject in theirs)
    assert other not in page
    assert "shown only to callers with access to every site" in page
    assert 'id="plot-outcomes"' in page
    assert 'id="plot-il6"' in page
    assert page.count('data-series="eligible" data-day=') == 1  # the day's eligible decisions: one bar
    # Counts are of this site's decisions only (the other site's two are eligible too).
    assert 'data-series="eligible" data-day=' in page
    eligible_bar = page.split('data-series="eligible" data-day=', 1)[1]
    assert 'data-count="2"' in eligible_bar.split(">", 1)[0]
    assert '<th scope="col">Record</th>' not in page  # record numbers run across sites
    assert '<line class="cutoff" data-pg-per-ml="17.85"' in page
    assert '<line class="lod" data-pg-per-ml="1.5"' in page
    assert "<script" not in page


async def test_the_page_shows_an_every_site_caller_the_chain(served: Served) -> None:
    await decide(served.client, new_site(), DECISIONS[:1])
    publisher = CheckpointPublisher(served.app.state.services.audit, served.settings.checkpoint_file, 0)
    checkpoint = await publisher.publish()
    assert checkpoint is not None

    page = (await served.client.get("/ui?days=7")).text
    verified = await served.client.get("/v1/audit/verify")
    after = (await served.client.get("/ui?days=7")).text

    assert f"record {checkpoint.seq}, signed {checkpoint.issued_at}" in page
    assert f"<code>{checkpoint.hash}</code>" in page
    assert "Last verification" in page
    assert "none by this server process since it started" in page
    assert "the last 7 days" in page
    assert verified.json()["intact"] is True
    assert f"<strong>intact</strong>, records 1 to {verified.json()['last_seq']}" in after


@pytest.mark.parametrize(("scopes", "status"), [(("assess",), 403), (("admin",), 403), (("read",), 200)])
async def test_the_page_needs_the_read_scope(served: Served, scopes: tuple[str, ...], status: int) -> None:
    client = served.client
    headers = await key_headers(client, scopes=scopes, sites=None)

    assert (await client.get("/ui", headers=headers)).status_code == status


async def test_the_page_refuses_an_unknown_caller_and_a_bad_window(
    served: Served,
) -> None:
    client = served.client

    anonymous = await client.get("/ui", headers={"Authorization": ""})
    too_long = await client.get("/ui?days=91")

    assert anonymous.status_code == 401
    assert too_long.status_code == 422
    assert too_long.headers["content-type"] == "application/problem+json"


async def test_a_site_without_decisions_gets_empty_plots(
    served: Served,
) -> None:
    client, monitoring = served.client, served.monitoring
    site = new_site()
    reader = await key_headers(client, scopes=("read",), sites=[site])

    overview = await monitoring.overview(SiteAccess(frozenset({site})), days=1)
    page = (await client.get("/ui?days=1", headers=reader)).text

    assert overview.by_outcome.total == 0
    assert overview.recent == ()
    assert overview.il6.sampled == 0
    assert (overview.il6.lo, overview.il6.hi) == (0, 2)
    assert "No decisions in this window." in page
    assert "No decisions yet." in page
    assert 'class="bar ' not in page.split('id="plot-classifier"')[0]
