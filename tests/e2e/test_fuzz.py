"""Property-based requests generated from the committed OpenAPI document, against a real server.

Schemathesis sends valid and invalid requests to every operation; whatever it sends, the service must not
answer 5xx, and every answer must match the documented status codes, media types and schemas.
"""

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.store.migrations import PROJECT_ROOT
from tests.e2e.conftest import (
    UNTHROTTLED,
    Server,
    create_key,
    fresh_postgresql_database,
    migrate,
    production_backend,
    running_server,
)


@schemathesis.serializer("application/x-ndjson")
def ndjson(_context: schemathesis.SerializationContext, value: Any) -> bytes:
    """A generated batch (a list of bodies, or anything else) written one JSON document per line."""
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


schema = schemathesis.openapi.from_path(PROJECT_ROOT / "openapi" / "openapi.json")
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    with fresh_postgresql_database() as url:
        # Unthrottled: the generated requests come faster than any caller's allowance.
        backend = replace(production_backend(url, workdir), extra_environment=UNTHROTTLED)
        migrate(backend, workdir)
        with running_server(backend, workdir, workdir, create_key(backend, workdir)) as server:
            server.wait_ready()
            yield server


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_contract(
    case: schemathesis.Case[Any], fuzz_server: Server
) -> None:
    case.call_and_validate(base_url=fuzz_server.base_url, headers=fuzz_server.headers, checks=CHECKS)
