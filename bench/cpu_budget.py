"""Where a decision's CPU goes: the service's own request path, its store, and the floor, in process.

A benchmark, not a test. Over HTTP (bench/audit_appends.py) the server, the load generator and PostgreSQL
share the CPUs, and one figure per stage says what a decision costs in all, not where. This one calls the
ASGI applications directly, with no HTTP server and no load generator: ``--concurrency`` coroutines each
send ``POST /v1/assessments`` requests, one after another, to the application object, and the process's
own CPU time (user and system, ``time.process_time``) is divided by the 201s, as is the part of it the
garbage collector took (timed by ``gc.callbacks``). Three variants, each in a process of its own (so that
none inherits another's state), on the same requests:

- ``floor``: bench/floor_app.py, the bare FastAPI endpoint the HTTP benchmark compares with;
- ``service, no store``: the service as deployed (``create_app``, production settings, on PostgreSQL),
  except that the audit writer's ``write`` links and hashes the decision as the writer would (its record
  and hash computed the same way) but returns it without a transaction, and an API key, once
  looked up, is answered from memory: what the request path costs without the store;
- ``service``: the service as deployed, every decision appended to the audit chain in PostgreSQL.

The difference between the last two is what the store costs per decision (the writer's transactions, the
key lookups, and the waiting for them); between the first two, what the service's request path adds to the
floor's (authentication, exact JSON reading, deciding, the record and its hash, the answer). HTTP itself
(uvicorn, the event loop's sockets) is in neither: over HTTP it costs the service and the floor alike.

It creates a database ``il6_bench_<hex>`` and a key as bench/audit_appends.py does, and drops both after.
Log lines are written at WARNING (none per request), as a quiet deployment's would be.

    .venv/bin/python bench/cpu_budget.py                          # 64 at once, 3 rounds of 3000
    .venv/bin/python bench/cpu_budget.py --concurrency 16 --requests 2000 --rounds 5
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from audit_appends import (
    DEFAULT_ADMIN_URL,
    IL6,
    KEY_ENVIRONMENT,
    PROJECT,
    SERVICE_LOGIN,
    SERVICE_LOGIN_SQL,
    _run,
    create_api_key,
    fresh_database,
    service_environment,
)
from sqlalchemy import make_url
from stopwatch import Stopwatch  # this directory's

VARIANTS = ("floor", "service-no-store", "service")
LABELS = {"floor": "floor", "service-no-store": "service, no store", "service": "service"}
RESULT_PREFIX = "CPU_BUDGET_RESULT "

App = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


def request_body(subject: str) -> bytes:
    return json.dumps(
        {
            "subject_id": subject,
            "site_id": "PIT",
            "il6": {"value": 12.5, "unit": "pg/mL", "assay": "elecsys-il6"},
            "specimen": {"type": "serum", "collected_at": "2026-11-20T09:30:00Z"},
        }
    ).encode()


async def post(app: App, api_key: bytes, subject: str) -> int:
    """One POST /v1/assessments through the application object; its status."""
    body = request_body(subject)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/assessments",
        "raw_path": b"/v1/assessments",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer " + api_key),
            (b"idempotency-key", subject.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect: the request is answered first
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def without_the_store() -> None:
    """The writer returns each decision as it would have recorded it, without a transaction; a key looked
    up once is answered from memory. Everything else is the service's own code."""
    from datetime import UTC, datetime

    from app.domain.access import Principal
    from app.domain.audit import GENESIS_HASH, record_hash, to_record
    from app.service.access import KeyService
    from app.service.chain_writer import ChainWriter
    from app.service.pending_decisions import Pending, Written
    from app.store.copy_append import loaded_assessment
    from app.store.repositories import NewAssessment, StoredAssessment

    async def write(_writer: ChainWriter, pending: Pending) -> Written:
        if not isinstance(pending.decision, NewAssessment):
            raise TypeError("the benchmark's requests are all decided")
        values = {
            **vars(pending.decision),
            "seq": 1,
            "prev_hash": GENESIS_HASH,
            "recorded_at": datetime.now(UTC),
        }
        values["hash"] = record_hash(to_record(values))
        return Written(StoredAssessment(loaded_assessment(values), None), replayed=False)

    looked_up: dict[str, Principal] = {}
    authenticate = KeyService.authenticate

    async def authenticate_once(self: KeyService, presented: str) -> Principal:
        if presented not in looked_up:
            looked_up[presented] = await authenticate(self, presented)
        return looked_up[presented]

    setattr(ChainWriter, "write", write)  # noqa: B010 - a benchmark's stand-in, on purpose
    setattr(KeyService, "authenticate", authenticate_once)  # noqa: B010


async def measure(variant: str, concurrency: int, requests: int, rounds: int) -> dict[str, Any]:
    api_key = os.environ[KEY_ENVIRONMENT].encode()
    if variant == "floor":
        sys.path.insert(0, str(PROJECT / "bench"))
        from floor_app import app
    else:
        if variant == "service-no-store":
            without_the_store()
        from app.main import create_app

        app = create_app()
    tag = uuid.uuid4().hex[:10]
    cpu_per_ok: list[float] = []
    gc_per_ok: list[float] = []
    per_second: list[float] = []
    async with app.router.lifespan_context(app):
        for round_ in range(rounds + 1):  # the first warms up, unreported
            statuses: list[int] = []

            async def caller(index: int, round_: int = round_, statuses: list[int] = statuses) -> None:
                for number in range(index, requests, concurrency):
                    statuses.append(await post(app, api_key, f"CPU-{tag}-{round_}-{number}"))

            with Stopwatch() as watch:
                await asyncio.gather(*(caller(index) for index in range(concurrency)))
            wall, cpu, collected = watch.reading
            created = statuses.count(201)
            if created != len(statuses):
                others = sorted({status for status in statuses if status != 201})
                raise RuntimeError(f"{variant}: {len(statuses) - created} answers were not 201: {others}")
            if round_:
                cpu_per_ok.append(cpu / created * 1e6)
                gc_per_ok.append(collected / created * 1e6)
                per_second.append(created / wall)
    return {
        "variant": variant,
        "cpu_us_per_ok": cpu_per_ok,
        "gc_us_per_ok": gc_per_ok,
        "per_second": per_second,
    }


def run_variant(variant: str, args: argparse.Namespace, environment: dict[str, str]) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--variant",
        variant,
        "--concurrency",
        str(args.concurrency),
        "--requests",
        str(args.requests),
        "--rounds",
        str(args.rounds),
    ]
    completed = subprocess.run(  # noqa: S603 - our own interpreter and script, no shell
        command, env=environment, cwd=PROJECT, capture_output=True, text=True, timeout=1800, check=False
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            found: dict[str, Any] = json.loads(line.removeprefix(RESULT_PREFIX))
            return found
    raise RuntimeError(
        f"{variant} printed no result (exit {completed.returncode}):\n{completed.stderr[-3000:]}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64, help="Requests under way at once (64).")
    parser.add_argument("--requests", type=int, default=3000, help="Requests per round (3000).")
    parser.add_argument("--rounds", type=int, default=3, help="Measured rounds per variant (3).")
    parser.add_argument(
        "--only",
        choices=VARIANTS,
        action="append",
        help="Run this variant only (repeatable; all three unless told).",
    )
    parser.add_argument("--admin-url", default=os.environ.get("TEST_POSTGRES_ADMIN_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant is not None:
        result = asyncio.run(measure(args.variant, args.concurrency, args.requests, args.rounds))
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    print(f"concurrency {args.concurrency}, {args.rounds} rounds of {args.requests} requests per variant")
    with tempfile.TemporaryDirectory(prefix="il6-cpu-") as scratch_name:
        scratch = Path(scratch_name)
        with fresh_database(args.admin_url) as url:
            environment = service_environment(url, scratch, None)
            _run([str(IL6), "db", "upgrade"], environment, scratch)
            _run(
                [str(IL6), "audit", "keygen", "--output", str(scratch / "audit-signing-key.pem")],
                environment,
                scratch,
            )
            with psycopg.connect(args.admin_url, autocommit=True, connect_timeout=5) as admin:
                admin.execute(SERVICE_LOGIN_SQL)
            service_url = make_url(url).set(username=SERVICE_LOGIN).render_as_string(hide_password=False)
            serving = {**environment, "DATABASE_URL": service_url, "IL6_LOG_LEVEL": "WARNING"}
            serving[KEY_ENVIRONMENT] = create_api_key(serving, scratch)
            results = [run_variant(variant, args, serving) for variant in args.only or VARIANTS]
    print(
        f"{'variant':20s} {'CPU µs/decision (median, each round)':40s} decisions/s (median)"
        "   of the CPU, collecting garbage (median)"
    )
    medians = {}
    for result in results:
        cpu = result["cpu_us_per_ok"]
        medians[result["variant"]] = statistics.median(cpu)
        rounds = ", ".join(f"{value:.0f}" for value in cpu)
        print(
            f"{LABELS[result['variant']]:20s} {medians[result['variant']]:6.0f} ({rounds})"
            f"{'':{max(0, 31 - len(rounds))}s} {statistics.median(result['per_second']):8.0f}"
            f"{statistics.median(result['gc_us_per_ok']):21.0f} µs"
        )
    if set(medians) != set(VARIANTS):
        return 0
    print(
        "the service's request path adds "
        f"{medians['service-no-store'] - medians['floor']:.0f} µs to the floor's"
    )
    print(f"the store adds {medians['service'] - medians['service-no-store']:.0f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
