"""The classifier lifecycle through the API: register, activate, retire, shadow; history at a moment;
impact analysis; and two processes on one store. Each test runs on a database of its own, because it
changes which versions are registered and active.

The versions registered here are the bundled rule set renamed, with a changed cutoff where a test needs a
difference: synthetic test versions, never clinical ones.
"""

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from app.domain.classifiers.base import ClassifierDefinitionError
from app.domain.classifiers.lifecycle import LifecycleEvent
from app.domain.classifiers.manifest import manifest_digest
from app.domain.classifiers.registry import Builder, RegisteredVersion, load_registry
from app.domain.classifiers.rules import RuleSetClassifier
from app.ml.builders import BUILDERS
from app.service.classifiers import ClassifierCatalog
from app.settings import Environment, Settings
from app.store.database import create_engine_for, create_session_factory, database_urls
from app.store.models import ClassifierEvent, ClassifierVersion, ShadowDecision
from app.store.unit_of_work import StoreUnavailable, UnitOfWork
from tests.factories import assessment_body
from tests.integration.conftest import app_client, caller_of, key_headers
from tests.unit.factories import bundled_manifest, parameter


def settings_for(url: str, **overrides: Any) -> Settings:
    return Settings(
        database_url=SecretStr(url), environment=Environment.TEST, checkpoint_interval_s=0, **overrides
    )


@pytest.fixture
async def client(own_database: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in app_client(settings_for(own_database)):
        yield client


def catalog_of(client: httpx.AsyncClient) -> ClassifierCatalog:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    catalog: ClassifierCatalog = transport.app.state.services.catalog  # type: ignore[attr-defined]
    return catalog


def synthetic_version(
    name: str, version: str, cutoff: str | None = None, assay: str | None = None
) -> dict[str, Any]:
    """The bundled rule set under another name and version, optionally with another cutoff or assay id."""
    manifest = bundled_manifest()
    manifest |= {"name": name, "version": version, "title": f"Synthetic test version {name}@{version}"}
    if cutoff is not None:
        parameter(manifest, "risk.cutoff_pg_per_ml")["value"] = cutoff
    if assay is not None:
        manifest["assays"][0]["id"] = assay
    return manifest


async def register(client: httpx.AsyncClient, manifest: dict[str, Any]) -> RegisteredVersion:
    return await catalog_of(client).register(manifest, None, by="tests", reason="synthetic test version")


async def change(client: httpx.AsyncClient, ref: str, event: str, **headers: str) -> httpx.Response:
    name, version = ref.split("@")
    return await client.post(
        f"/v1/classifiers/{name}/{version}/events",
        json={"event": event, "reason": f"tests: {event}"},
        headers=headers,
    )


async def decide(
    client: httpx.AsyncClient, classifier: str, value: Any, comparator: str | None = None
) -> httpx.Response:
    body = assessment_body(value=value, comparator=comparator, classifier=classifier)
    response = await client.post("/v1/assessments", json=body)
    assert response.status_code == 201, response.text
    return response


def unique(prefix: str = "tests") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def test_a_registered_version_is_a_draft_that_decides_nothing(client: httpx.AsyncClient) -> None:
    name = unique()
    await register(client, synthetic_version(name, "1.0.0"))

    listed = {(i["name"], i["version"]): i for i in (await client.get("/v1/classifiers")).json()["items"]}
    pinned = await client.post("/v1/assessments", json=assessment_body(classifier=f"{name}@1.0.0"))

    assert listed[(name, "1.0.0")]["status"] == "draft"
    assert pinned.status_code == 422
    assert "Unknown classifier version" in pinned.text


async def test_activation_switches_versions_and_history_says_which_was_active_when(
    client: httpx.AsyncClient,
) -> None:
    name = unique()
    await register(client, synthetic_version(name, "1.0.0"))
    await register(client, synthetic_version(name, "2.0.0", cutoff="5"))

    first = await change(client, f"{name}@1.0.0", "activated")
    decided_by_first = await decide(client, name, 10, None)
    second = await change(client, f"{name}@2.0.0", "activated")
    decided_by_second = await decide(client, name, 10, None)
    pinned_retired = await decide(client, f"{name}@1.0.0", 10, None)

    assert first.status_code == 201, first.text
    (activated,) = first.json()["events"]
    assert (activated["version"], activated["event"]) == ("1.0.0", "activated")
    assert activated["by"] == await caller_of(client)
    assert [(e["version"], e["event"]) for e in second.json()["events"]] == [
        ("1.0.0", "retired"),
        ("2.0.0", "activated"),
    ]
    assert decided_by_first.headers["Classifier-Version"] == f"{name}@1.0.0"
    assert decided_by_first.json()["risk"]["group"] == "low"  # 10 < 17.85
    assert decided_by_second.headers["Classifier-Version"] == f"{name}@2.0.0"
    assert decided_by_second.json()["risk"]["group"] == "high"  # 10 >= 5
    assert pinned_retired.headers["Classifier-Version"] == f"{name}@1.0.0"  # a retired version, pinned

    history = (await client.get(f"/v1/classifiers/{name}/history")).json()
    switch = datetime.fromisoformat(second.json()["events"][1]["at"])
    assert history["active"] == "2.0.0"
    assert [(p["version"], p["until"] is None) for p in history["periods"]] == [
        ("1.0.0", False),
        ("2.0.0", True),
    ]
    assert [e["event"] for e in history["events"]] == [
        "registered",
        "registered",
        "activated",
        "retired",
        "activated",
    ]
    for moment, expected in (
        (switch - timedelta(microseconds=1), "1.0.0"),
        (switch, "2.0.0"),
        (datetime.fromisoformat(activated["at"]) - timedelta(seconds=1), None),
    ):
        answer = await client.get(f"/v1/classifiers/{name}/history", params={"at": moment.isoformat()})
        assert answer.json()["active_at"]["version"] == expected, moment

    replayed = await client.post(f"/v1/assessments/{decided_by_first.json()['id']}/replay")
    assert replayed.json()["matches"] is True


async def test_the_default_classifier_can_be_replaced_but_never_left_without_an_active_version(
    client: httpx.AsyncClient,
) -> None:
    retire = await change(client, "il6-enrichment@1.0.0", "retired")
    manifest = synthetic_version("il6-enrichment", "1.1.0")
    await register(client, manifest)
    replace = await change(client, "il6-enrichment@1.1.0", "activated")
    unpinned = await client.post("/v1/assessments", json=assessment_body())

    assert retire.status_code == 409
    assert retire.headers["content-type"] == "application/problem+json"
    assert retire.json()["type"].endswith("/problems/lifecycle-refused")
    assert replace.status_code == 201, replace.text
    assert unpinned.headers["Classifier-Version"] == "il6-enrichment@1.1.0"
    listed = (await client.get("/v1/classifiers")).json()["items"]
    assert [(i["version"], i["status"], i["default"]) for i in listed] == [
        ("1.0.0", "retired", False),
        ("1.1.0", "active", True),
    ]


async def test_lifecycle_changes_need_an_administrator_of_every_site(client: httpx.AsyncClient) -> None:
    name = unique()
    await register(client, synthetic_version(name, "1.0.0"))
    reader = await key_headers(client, scopes=("assess", "read"))
    site_admin = await key_headers(client, scopes=("admin", "read"), sites=["PIT"])

    as_reader = await change(client, f"{name}@1.0.0", "activated", **reader)
    as_site_admin = await change(client, f"{name}@1.0.0", "activated", **site_admin)
    history = await client.get(f"/v1/classifiers/{name}/history", headers=reader)

    assert as_reader.status_code == 403
    assert as_site_admin.status_code == 403
    assert history.status_code == 200  # reading the history needs only read
    assert history.json()["active"] is None


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/classifiers/il6-enrichment/9.9.9/events", {"event": "activated", "reason": "x"}, 404),
        ("/v1/classifiers/il6-enrichment/1.0.0/events", {"event": "activated", "reason": "x"}, 409),
        ("/v1/classifiers/il6-enrichment/1.0.0/events", {"event": "registered", "reason": "x"}, 422),
        ("/v1/classifiers/il6-enrichment/1.0.0/events", {"event": "retired"}, 422),
        ("/v1/classifiers/il6-enrichment/1.0.0/events", {"event": "retired", "reason": ""}, 422),
        ("/v1/classifiers/il6-enrichment/v1/events", {"event": "retired", "reason": "x"}, 422),
    ],
)
async def test_refused_changes_are_problems_and_record_nothing(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], status: int
) -> None:
    before = (await client.get("/v1/classifiers/il6-enrichment/history")).json()["events"]

    response = await client.post(path, json=body)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/classifiers/il6-enrichment/history")).json()["events"] == before


async def test_unknown_classifier_history_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/classifiers/{unique()}/history")
    naive = await client.get("/v1/classifiers/il6-enrichment/history", params={"at": "2026-12-01T10:00:00"})

    assert response.status_code == 404
    assert naive.status_code == 422  # a moment without its offset is ambiguous


async def test_a_shadow_decides_beside_the_active_version_stored_and_never_answered(
    client: httpx.AsyncClient, own_database: str
) -> None:
    name = unique()
    await register(client, synthetic_version(name, "1.0.0"))
    await register(client, synthetic_version(name, "2.0.0", cutoff="5"))
    await change(client, f"{name}@1.0.0", "activated")
    started = await change(client, f"{name}@2.0.0", "shadow-started")

    answers = [await decide(client, name, value) for value in (3, 10, 30)]
    censored = await decide(client, name, 1.5, "<")
    pinned_old = await client.post("/v1/assessments", json=assessment_body(value=10, comparator=None))

    assert started.status_code == 201, started.text
    for answer in [*answers, censored]:
        assert answer.headers["Classifier-Version"] == f"{name}@1.0.0"
        assert "2.0.0" not in answer.text
    assert [a.json()["risk"]["group"] for a in answers] == ["low", "low", "high"]
    report = await client.get(f"/v1/classifiers/{name}/2.0.0/shadow-report")
    assert report.status_code == 200, report.text
    assert report.json()["against"] == f"{name}@1.0.0"
    risk = report.json()["risk_group"]
    assert (risk["total"], risk["changed"]) == (4, 1)  # 10 pg/mL: low under 17.85, high under 5
    assert {"recorded": "low", "candidate": "high", "count": 1} in risk["table"]
    assert report.json()["eligibility"]["changed"] == 0
    # Compared with another answering version, the same shadow outputs make a table of their own.
    other = await client.get(f"/v1/classifiers/{name}/2.0.0/shadow-report", params={"against": "9.9.9"})
    assert other.json()["risk_group"]["total"] == 0
    engine = create_engine(database_urls(own_database)[1])
    try:
        with engine.connect() as connection:
            stored = (
                connection.execute(
                    select(ShadowDecision.assessment_id).where(ShadowDecision.classifier_name == name)
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    assert {str(row) for row in stored} == {a.json()["id"] for a in [*answers, censored]}
    assert pinned_old.json()["id"] not in {str(row) for row in stored}  # another classifier: no shadow


async def test_impact_analysis_counts_what_a_candidate_would_change(client: httpx.AsyncClient) -> None:
    name = unique()
    await register(client, synthetic_version(name, "1.0.0"))
    await register(client, synthetic_version(name, "2.0.0", cutoff="5"))
    await register(client, synthetic_version(name, "3.0.0", assay="another-assay"))
    await change(client, f"{name}@1.0.0", "activated")
    decided = [await decide(client, name, value) for value in (3, 10, 12, 30)]
    first_seq = min(int(d.json()["audit"]["seq"]) for d in decided)
    pinned = await decide(client, f"{name}@1.0.0", 10)  # activating another version would not change it
    await decide(client, "il6-enrichment", 10)  # another classifier's decision: not replayed

    impact = await client.post(f"/v1/classifiers/{name}/2.0.0/impact", json={"from_seq": first_seq})
    ranged = await client.post(
        f"/v1/classifiers/{name}/2.0.0/impact", json={"from_seq": first_seq, "to_seq": first_seq}
    )
    undecidable = await client.post(f"/v1/classifiers/{name}/3.0.0/impact", json={"from_seq": first_seq})

    assert impact.status_code == 200, impact.text
    report = impact.json()
    assert (report["decisions"], report["subjects"], report["subjects_changed"]) == (4, 4, 2)
    assert report["pinned"] == 1
    assert report["last_seq"] < int(pinned.json()["audit"]["seq"])
    assert {"recorded": "low", "candidate": "high", "count": 2} in report["risk_group"]["table"]
    assert report["eligibility"]["changed"] == 0
    assert ranged.json()["decisions"] == 1
    assert undecidable.json()["subjects_changed"] == 4
    assert sum(undecidable.json()["undecidable"].values()) == 4
    assert all("assay" in why for why in undecidable.json()["undecidable"])


async def test_bundled_versions_enter_the_store_once(own_database: str) -> None:
    settings = settings_for(own_database)
    async for _ in app_client(settings):
        pass
    async for _ in app_client(settings):
        pass

    engine = create_engine(database_urls(own_database)[1])
    try:
        with engine.connect() as connection:
            versions = connection.execute(select(ClassifierVersion.name, ClassifierVersion.origin)).all()
            events = connection.execute(
                select(ClassifierEvent.version, ClassifierEvent.event, ClassifierEvent.by)
            ).all()
        with pytest.raises(DBAPIError, match=r"append-only|refused"), engine.begin() as connection:
            connection.execute(text("UPDATE classifier_event SET reason = 'rewritten'"))
    finally:
        engine.dispose()
    assert versions == [("il6-enrichment", "bundled")]
    assert events == [("1.0.0", "registered", "service:bundled"), ("1.0.0", "activated", "service:bundled")]


async def test_a_process_that_cannot_reload_after_a_change_decides_nothing_until_it_can(
    own_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What it serves may have been retired by the change it could not read."""
    settings = settings_for(own_database, classifier_refresh_s=0.05)
    async for first in app_client(settings):
        async for second in app_client(settings):
            stuck = catalog_of(second)
            reload = stuck.refresh

            async def fails() -> None:
                raise RuntimeError("an unexpected failure")

            monkeypatch.setattr(stuck, "refresh", fails)
            await register(first, synthetic_version(unique(), "1.0.0"))  # a change the second must read
            refused = await eventually(second, 503)
            monkeypatch.setattr(stuck, "refresh", reload)
            served = await eventually(second, 201)

    assert refused.json()["type"] == "/problems/audit-store-unavailable"
    assert served.headers["Classifier-Version"] == "il6-enrichment@1.0.0"


async def eventually(client: httpx.AsyncClient, status: int) -> httpx.Response:
    """The first answer to a decision with ``status``, asked every 50 ms for up to 10 s."""
    for _ in range(200):
        answer = await client.post("/v1/assessments", json=assessment_body())
        if answer.status_code == status:
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {status}: {answer.status_code} {answer.text}")


async def test_another_process_serves_an_activation_within_its_refresh_interval(own_database: str) -> None:
    settings = settings_for(own_database, classifier_refresh_s=0.1)
    name = unique()
    async for first in app_client(settings):
        async for second in app_client(settings):
            await register(first, synthetic_version(name, "1.0.0"))
            activated = await change(first, f"{name}@1.0.0", "activated")
            assert activated.status_code == 201, activated.text
            for _ in range(100):  # up to 10 s; one refresh interval is 0.1 s
                answer = await second.post("/v1/assessments", json=assessment_body(classifier=name))
                if answer.status_code == 201:
                    break
                await asyncio.sleep(0.1)
            assert answer.status_code == 201, answer.text
            assert answer.headers["Classifier-Version"] == f"{name}@1.0.0"


@pytest.mark.parametrize(
    ("alter", "reason"),
    [
        (lambda manifest: manifest, "digest mismatch"),
        (lambda manifest: manifest | {"count": 2**60}, "no RFC 8785 form"),
    ],
    ids=["another-cutoff", "a-number-beyond-2-53"],
)
async def test_a_stored_version_altered_behind_the_service_is_not_served(
    own_database: str, alter: Callable[[dict[str, Any]], dict[str, Any]], reason: str
) -> None:
    settings = settings_for(own_database)
    name = unique()
    async for client in app_client(settings):
        await register(client, synthetic_version(name, "1.0.0"))
        await change(client, f"{name}@1.0.0", "activated")
        decided = await decide(client, name, 10)
    sync_url = database_urls(own_database)[1]
    engine = create_engine(sync_url)
    try:
        with engine.begin() as connection:  # as the owner, with the append-only guard stepped around
            if engine.dialect.name == "postgresql":
                connection.execute(text("SET LOCAL session_replication_role = replica"))
            else:
                connection.execute(text("DROP TRIGGER classifier_version_no_update"))
            connection.execute(
                text("UPDATE classifier_version SET manifest = :m WHERE name = :n"),
                {"m": json.dumps(alter(synthetic_version(name, "1.0.0", cutoff="1"))), "n": name},
            )
    finally:
        engine.dispose()

    async for client in app_client(settings):
        listed = (await client.get("/v1/classifiers")).json()
        replay = await client.post(f"/v1/assessments/{decided.json()['id']}/replay")
        pinned = await client.post("/v1/assessments", json=assessment_body(classifier=f"{name}@1.0.0"))

    assert name not in {item["name"] for item in listed["items"]}
    (unavailable,) = [u for u in listed["unavailable"] if u["name"] == name]
    assert reason in unavailable["reason"]
    assert replay.status_code == 409
    assert replay.json()["type"] == "/problems/replay-unavailable"
    assert pinned.status_code == 422


@pytest.mark.parametrize("own_database", ["postgresql"], indirect=True)  # SQLite has no roles
async def test_the_service_role_may_only_read_and_insert_the_registry(own_database: str) -> None:
    async for _ in app_client(settings_for(own_database)):
        pass
    engine = create_engine(database_urls(own_database)[1])
    try:
        with engine.connect() as connection:
            granted = connection.execute(
                text(
                    "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                    "WHERE grantee = 'il6_app' AND table_name IN "
                    "('classifier_version', 'classifier_event', 'shadow_decision') ORDER BY 1, 2"
                )
            ).all()
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL ROLE il6_app"))
            with pytest.raises(DBAPIError, match="permission denied"):
                connection.execute(text("UPDATE classifier_event SET reason = 'rewritten'"))
    finally:
        engine.dispose()
    assert [tuple(row) for row in granted] == [
        (table, privilege)
        for table in ("classifier_event", "classifier_version", "shadow_decision")
        for privilege in ("INSERT", "SELECT")
    ]


@asynccontextmanager
async def two_catalogs(
    url: str, second_builders: Mapping[str, Builder] = BUILDERS
) -> AsyncIterator[tuple[ClassifierCatalog, ClassifierCatalog]]:
    """Two processes' catalogs on one store, each with its own engine; the first also knows TEST_KIND."""
    engines = [create_engine_for(settings_for(url)) for _ in range(2)]
    knows_test_kind = {**BUILDERS, TEST_KIND: lambda d, _: RuleSetClassifier(d, kind=TEST_KIND)}
    catalogs = tuple(
        ClassifierCatalog(load_registry(), partial(UnitOfWork, create_session_factory(e)), builders)
        for e, builders in zip(engines, (knows_test_kind, second_builders), strict=True)
    )
    try:
        for catalog in catalogs:
            await catalog.start()
        yield catalogs[0], catalogs[1]
    finally:
        for engine in engines:
            await engine.dispose()


TEST_KIND = "rules-under-test"
"""A kind only the first of ``two_catalogs`` can build: a version another process cannot verify."""


async def test_two_activations_at_once_leave_one_active_version(own_database: str) -> None:
    name = unique()
    async with two_catalogs(own_database) as (first, second):
        for version in ("1.0.0", "2.0.0"):
            await first.register(synthetic_version(name, version), None, by="tests", reason="synthetic")
        await second.refresh()

        same = await asyncio.gather(
            first.change(name, "1.0.0", LifecycleEvent.ACTIVATED, by="a", reason="race"),
            second.change(name, "1.0.0", LifecycleEvent.ACTIVATED, by="b", reason="race"),
            return_exceptions=True,
        )
        both = await asyncio.gather(
            first.change(name, "2.0.0", LifecycleEvent.ACTIVATED, by="a", reason="race"),
            second.change(name, "1.0.0", LifecycleEvent.RETIRED, by="b", reason="race"),
            return_exceptions=True,
        )
        lifecycle = await first.lifecycle(name)

    assert sorted(type(outcome).__name__ for outcome in same) == ["LifecycleRefused", "list"]
    assert lifecycle is not None
    assert lifecycle.active() == "2.0.0"
    assert any(isinstance(outcome, list) for outcome in both)
    periods = lifecycle.periods()
    assert all(a.until is not None and a.until <= b.since for a, b in itertools.pairwise(periods))
    assert sum(p.until is None for p in periods) == 1


async def test_a_process_that_cannot_verify_the_new_default_version_decides_nothing(
    own_database: str,
) -> None:
    async with two_catalogs(own_database) as (knows, does_not):
        manifest = synthetic_version("il6-enrichment", "1.1.0") | {"kind": TEST_KIND}
        await knows.register(manifest, None, by="tests", reason="synthetic")
        await knows.change("il6-enrichment", "1.1.0", LifecycleEvent.ACTIVATED, by="tests", reason="x")
        await does_not.refresh()

        assert (await knows.for_decisions()).resolve(None).definition.version == "1.1.0"
        with pytest.raises(StoreUnavailable, match="cannot be served by this process"):
            await does_not.for_decisions()  # never the retired 1.0.0

        await knows.change("il6-enrichment", "1.0.0", LifecycleEvent.ACTIVATED, by="tests", reason="back")
        await does_not.refresh()
        assert (await does_not.for_decisions()).resolve(None).definition.version == "1.0.0"


async def test_registration_checks_the_digest_its_maker_published(client: httpx.AsyncClient) -> None:
    manifest = synthetic_version(unique(), "1.0.0")

    with pytest.raises(ClassifierDefinitionError, match="digest mismatch"):
        await catalog_of(client).register(manifest, None, by="tests", reason="x", digest="sha256:" + "0" * 64)
    entry = await catalog_of(client).register(
        manifest, None, by="tests", reason="x", digest=manifest_digest(manifest)
    )

    assert entry.status.value == "draft"


async def test_a_manifest_the_store_gives_back_changed_is_not_registered(
    client: httpx.AsyncClient, own_database: str
) -> None:
    """JSONB keeps a number as a number, not as written: 1e16 comes back as an integer beyond 2**53, which
    has no RFC 8785 form, so no process could verify the version it read. SQLite keeps the text."""
    name = unique()
    manifest = synthetic_version(name, "1.0.0") | {"notes_number": 1e16}
    on_postgresql = own_database.startswith("postgresql")

    if on_postgresql:
        with pytest.raises(ClassifierDefinitionError, match="gives this manifest back changed"):
            await register(client, manifest)
    else:
        await register(client, manifest)
    history = await client.get(f"/v1/classifiers/{name}/history")
    decided = await client.post("/v1/assessments", json=assessment_body())

    assert history.status_code == (404 if on_postgresql else 200)
    assert decided.status_code == 201, decided.text  # the registry went on being served


def test_a_manifest_without_an_rfc_8785_form_is_refused_as_a_definition() -> None:
    with pytest.raises(ClassifierDefinitionError, match="no RFC 8785 form"):
        manifest_digest({"name": "x", "big": 2**60})
