"""The application factory: settings, engine, classifier registry and services, built once at start-up."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from functools import partial
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api import problems
from app.api.auth import ACCESS_PROBLEMS, AuthenticationMiddleware, requires
from app.api.body_limit import BodyLimitMiddleware
from app.api.deps import Access, Services
from app.api.intake import plain_submission
from app.api.intake_fhir import fhir_forms
from app.api.metrics import Metrics
from app.api.openapi import install_openapi
from app.api.rate_limit import RateLimiter
from app.api.request_log import RequestLogMiddleware
from app.api.routers import assessments, batch, cards, catalog, exports, health, keys, lifecycle, ui
from app.api.routers import audit as audit_routes
from app.api.routers import cds_hooks as cds_hooks_routes
from app.api.routers import metrics as metrics_routes
from app.api.routers import redcap as redcap_routes
from app.api.security_headers import DOCS_PATHS, SecurityHeadersMiddleware
from app.collector import serving
from app.domain.classifiers.registry import load_registry
from app.logs import configure_logging
from app.ml.builders import BUILDERS
from app.service.access import KeyService
from app.service.assessments import AssessmentService
from app.service.audit import AuditService, CheckpointPublisher
from app.service.chain_writer import ChainWriter
from app.service.checkpoints import CheckpointSigner, last_signed, load_signing_key
from app.service.classifiers import ClassifierCatalog
from app.service.impact import ClassifierReports
from app.service.monitoring import MonitoringService
from app.service.oidc import OidcConfig, OidcVerifier
from app.service.readiness import ReadinessProbe
from app.service.redcap import RedcapReceiver
from app.settings import Environment, Settings, get_settings
from app.store.database import (
    create_engine_for,
    create_lookup_session_factory,
    create_session_factory,
    verify_ranges,
)
from app.store.migrations import head_revisions
from app.store.privileges import login_privileges
from app.store.unit_of_work import UnitOfWork

logger = logging.getLogger("app")

DESCRIPTION = """\
Decides whether a subject qualifies for the biomarker-enrichment stage of the dasatinib + cetuximab trial
(NCT01488318) from a serum IL6 result, assigns an IL6 risk group, and records every decision in the audit
store before answering. Every clinical number the rules use comes from a versioned, checksummed classifier
definition (its parameters and assays), with its source: see /v1/classifiers and /v1/assays.
"""


async def refuse_a_login_that_can_alter_the_audit_trail(engine: AsyncEngine) -> None:
    """Production runs on a login that cannot step out of the audit role into owning the trail.

    The role set at connection start limits the service to SELECT and INSERT, but a login that owns the
    table (or is a superuser) can RESET ROLE; so production does not start on one (docs/audit.md).
    """
    try:
        privileges = await login_privileges(engine)
    except (SQLAlchemyError, OSError) as error:
        raise RuntimeError(
            f"production start refused: the database login's privileges could not be checked "
            f"({type(error).__name__})"
        ) from None
    if privileges is not None and privileges.can_alter_audit_trail:
        raise RuntimeError(
            f"production start refused: the database login {privileges.login!r} "
            f"{'is a superuser' if privileges.superuser else 'owns the audit trail'}; connect as a login "
            "that is a member of il6_app and owns nothing (docs/audit.md)"
        )


PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", *DOCS_PATHS, redcap_routes.TRIGGER_PATH})
"""Paths that answer without an API credential: the probes, the contract and its pages, and the REDCap
trigger (which REDCap cannot give a header; it carries its own URL secret)."""


def public_paths(*, metrics_public: bool) -> Callable[[str], bool]:
    def is_public(path: str) -> bool:
        return (
            path in PUBLIC_PATHS or path.startswith("/problems/") or (metrics_public and path == "/metrics")
        )

    return is_public


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)  # text in a terminal, else JSON lines
    # Third-party loggers that would print SQL parameters (subject ids, values) at DEBUG stay quiet.
    for name in ("alembic", "aiosqlite", "sqlalchemy.engine"):
        logging.getLogger(name).setLevel(logging.WARNING)
    registry = load_registry(settings.classifier_dir, BUILDERS)
    for rejected in registry.rejected:
        logger.error("classifier %s@%s is not served: %s", rejected.name, rejected.version, rejected.reason)
    signing_key = load_signing_key(
        settings.signing_key_file, create=settings.environment is not Environment.PRODUCTION
    )
    engine = create_engine_for(settings)
    metrics = Metrics(pool=lambda: engine.pool)  # read at each scrape: the engine may replace its pool
    unit_of_work = partial(UnitOfWork, create_session_factory(engine))
    writer = ChainWriter(
        unit_of_work,
        idempotency_ttl=timedelta(hours=settings.idempotency_key_ttl_hours),
        transaction_timeout_s=settings.db_transaction_timeout_s,
        observer=metrics,
    )
    signer = CheckpointSigner(signing_key)
    readers = partial(UnitOfWork, create_session_factory(engine, read_only=True))
    # Reading the trail back only reads: on SQLite its ranges then read beside each other and the writer.
    audit = AuditService(
        readers,
        signer,
        anchor=last_signed(settings.checkpoint_file, signer),
        parallel=verify_ranges(engine),
    )
    classifiers = ClassifierCatalog(
        registry,
        unit_of_work,
        BUILDERS,
        readers=readers,
        refresh_interval_s=settings.classifier_refresh_s,
        load_timeout_s=settings.db_transaction_timeout_s,
    )
    services = Services(
        catalog=classifiers,
        reports=ClassifierReports(classifiers, readers),
        monitoring=MonitoringService(readers, classifiers, audit, settings.checkpoint_file),
        assessments=AssessmentService(classifiers, unit_of_work, writer),
        audit=audit,
        readiness=ReadinessProbe(engine, head_revisions()),
        keys=KeyService(unit_of_work, readers, partial(UnitOfWork, create_lookup_session_factory(engine))),
        batch_max_items=settings.batch_max_items,
    )
    oidc_config = OidcConfig.from_settings(settings)
    access = Access(
        keys=services.keys,
        oidc=None if oidc_config is None else OidcVerifier(oidc_config),
        limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
        metrics=metrics,
    )
    publisher = CheckpointPublisher(audit, settings.checkpoint_file, settings.checkpoint_interval_s)
    redcap = RedcapReceiver.from_settings(settings, services.assessments, plain_submission)  # None: off

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.environment is Environment.PRODUCTION:
            try:
                await refuse_a_login_that_can_alter_the_audit_trail(engine)
            except RuntimeError:
                await engine.dispose()
                raise
        await classifiers.start()
        with serving():  # start-up's objects frozen out of scans, young collections less often
            refreshing = asyncio.create_task(classifiers.run(), name="classifier-refresh")
            publishing = (
                asyncio.create_task(publisher.run(), name="audit-checkpoints")
                if settings.checkpoint_interval_s > 0
                else None
            )
            yield
            refreshing.cancel()
            with suppress(asyncio.CancelledError):
                await refreshing
            if publishing is not None:
                publishing.cancel()
                with suppress(asyncio.CancelledError):
                    await publishing
        await writer.aclose()  # what was accepted is written before the store closes
        if redcap is not None:
            await redcap.aclose()
        if access.oidc is not None:
            await access.oidc.aclose()
        await engine.dispose()

    app = FastAPI(
        title="IL6 eligibility service",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry spans would carry request paths, and paths carry subject ids; the
        # service's metrics and log lines name routes by their template only. Off, it also stops looking
        # up the global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    app.state.access = access
    app.state.redcap = redcap
    app.state.fhir_forms = fhir_forms(settings.fhir_subject_system)  # the subject id's system is a setting
    problems.install(app)
    install_openapi(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        per_path={batch.BATCH_PATH: settings.max_batch_body_bytes},
    )
    app.add_middleware(
        AuthenticationMiddleware, is_public=public_paths(metrics_public=settings.metrics_public)
    )
    if settings.cors_allow_origins:  # off unless origins are configured; outside: a preflight has no key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["Location", "Classifier-Version", "Idempotent-Replayed", "X-Request-ID"],
        )
    app.add_middleware(RequestLogMiddleware, sink=metrics)  # logs, times and tags every answer, 413s included
    app.add_middleware(SecurityHeadersMiddleware, exempt_csp_paths=DOCS_PATHS)  # outermost: on every answer
    # Credentials first, for every protected route: nothing is read or validated for an unknown caller.
    protected: dict[str, Any] = {
        "dependencies": [Depends(requires(None))],
        "responses": problems.responses(*ACCESS_PROBLEMS),
    }
    app.include_router(batch.router, **protected)  # before assessments: /assessments/batch is no id
    app.include_router(assessments.router, **protected)
    app.include_router(audit_routes.router, **protected)
    app.include_router(lifecycle.router, **protected)  # before catalog: /{name}/history is no version
    app.include_router(catalog.router, **protected)
    app.include_router(cards.router, **protected)
    app.include_router(cds_hooks_routes.router, **protected)
    app.include_router(exports.create_router(settings.study_id), **protected)
    app.include_router(keys.router, **protected)
    app.include_router(ui.router, **protected)
    if settings.metrics_public:
        app.include_router(metrics_routes.create_router(public=True))
    else:
        app.include_router(metrics_routes.create_router(public=False), **protected)
    app.include_router(health.router)  # public: probes and problem type pages
    app.include_router(redcap_routes.router)  # authenticated by its own trigger secret
    return app
