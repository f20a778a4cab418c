"""Audited decisions per second through the batch endpoint: one request stream of N results.

A benchmark, not a test. It creates a database ``il6_bench_batch_<hex>`` on PostgreSQL, migrates it, and
builds the service in this process (``create_app``, as uvicorn would, driven through httpx's ASGI
transport: no network, so the figure is the service's own). It creates an API key, then posts each batch
size as one NDJSON request of distinct results, and prints decisions/s (201 items over the request's wall
time). Afterwards it checks that the rows equal the items created and that the chain verifies, then drops
the database.

Run from the project root, with PostgreSQL reachable (TEST_POSTGRES_ADMIN_URL, as for the tests)::

    .venv/bin/python bench/batch_decisions.py --items 1000 10000
"""

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from audit_appends import fresh_database  # this directory's (scripts run from it)
from pydantic import SecretStr

from app.domain.access import ALL_SITES, Scope
from app.main import create_app
from app.settings import Environment, Settings
from app.store.migrations import upgrade

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ITEM = {
    "site_id": "PIT",
    "il6": {"value": 1.5, "unit": "pg/mL", "comparator": "<", "assay": "elecsys-il6"},
    "specimen": {"type": "serum", "collected_at": "2026-11-20T09:30:00Z"},
}
"""A valid plain submission without its subject id (each item gets its own)."""
MAX_ITEMS = 100_000
"""The most items a batch may hold (IL6_BATCH_MAX_ITEMS at most)."""


async def run(database_url: str, sizes: list[int], state: Path, *, with_keys: bool = False) -> int:
    settings = Settings(
        database_url=SecretStr(database_url),
        environment=Environment.TEST,
        rate_limit_per_minute=0,
        log_level="WARNING",
        batch_max_items=MAX_ITEMS,
        max_batch_body_bytes=64 * 1024 * 1024,
        signing_key_file=state / "audit-signing-key.pem",
        checkpoint_file=state / "audit-checkpoints.jsonl",
    )
    app = create_app(settings)
    created_total = 0
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client,
    ):
        key = await app.state.services.keys.create(
            "bench-batch", frozenset(Scope), ALL_SITES, created_by="bench"
        )
        client.headers.update({"Authorization": f"Bearer {key.secret}"})
        print("items  decisions/s  seconds  created")
        for size in sizes:
            body = "\n".join(
                json.dumps({"subject_id": f"BENCH-{uuid.uuid4().hex[:16]}", **ITEM}) for _ in range(size)
            )
            headers = {"Content-Type": "application/x-ndjson"}
            if with_keys:  # each item is then bound to '<key>:<index>', checked and recorded with it
                headers["Idempotency-Key"] = f"bench-{uuid.uuid4().hex}"
            started = time.perf_counter()
            response = await client.post("/v1/assessments/batch", content=body, headers=headers)
            elapsed = time.perf_counter() - started
            created = int(response.json()["created"]) if response.status_code == 200 else 0
            created_total += created
            print(f"{size:>5}  {created / elapsed:>11.0f}  {elapsed:>7.2f}  {created:>7}")
        verification = (await client.get("/v1/audit/verify")).json()
    print(f"GET /v1/audit/verify: intact={verification['intact']} checked={verification['checked']}")
    ok = verification["intact"] and verification["checked"] == created_total == sum(sizes)
    print(f"rows {verification['checked']}, items created {created_total}: {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument(
        "--with-keys",
        action="store_true",
        help="Send each batch with an Idempotency-Key, as an upload that may be retried would.",
    )
    args = parser.parse_args()
    if any(not 0 < size <= MAX_ITEMS for size in args.items):
        parser.error(f"each batch holds 1 to {MAX_ITEMS} items")
    admin_url = os.environ.get("TEST_POSTGRES_ADMIN_URL", DEFAULT_ADMIN_URL)
    print(f"python: {platform.python_version()}; nproc: {os.cpu_count()}")
    with (
        fresh_database(admin_url, prefix="il6_bench_batch_") as database_url,
        tempfile.TemporaryDirectory(prefix="il6-bench-batch-") as state,
    ):
        upgrade(database_url)
        return asyncio.run(run(database_url, args.items, Path(state), with_keys=args.with_keys))


if __name__ == "__main__":
    sys.exit(main())
