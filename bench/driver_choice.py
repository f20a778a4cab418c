"""The audit writer's transaction through each database driver and layer: which costs the service least.

A benchmark, not a test. The service is CPU-bound in its own process (bench/RESULTS.md: the uvicorn worker
at 100% of a core while PostgreSQL uses a fifth of the other), and about a quarter of that CPU is the
audit writer's transaction. This measures that transaction alone, the same statements the writer sends,
through:

- ``service``: the service's own code, ``UnitOfWork`` and ``AssessmentRepository.append`` (SQLAlchemy ORM
  session on psycopg 3), then commit;
- ``sqlalchemy-core``: SQLAlchemy Core on an ``AsyncConnection`` (psycopg 3), the same statements;
- ``psycopg``: psycopg 3's ``AsyncConnection`` directly (``executemany``, which pipelines), JSONB written
  by the standard library's ``json.dumps``; ``psycopg+orjson``: the same, JSONB written by orjson;
- ``asyncpg``: asyncpg directly (``executemany``), JSONB by ``json.dumps``; ``asyncpg+orjson``: by orjson.

Each transaction is what one group commit of B decisions does: take the chain's advisory lock, read the
database clock and the chain head, link and hash B records with the service's own code (``next_link``,
``to_record``, ``record_hash``), insert them (every column; the table's trigger checks each link), and
commit, with ``synchronous_commit`` on. One connection, one transaction after another, as the single
writer does. The records are the submission of bench/audit_appends.py decided by the service
(bench/verify_chain.py's ``Filler``). The variants take turns, a few seconds each, for several rounds, so
that a change in the machine's load touches all; each line is the median round.

Printed per variant and B: transactions/s, records/s, the median transaction in ms, and this process's CPU
time per record in µs (what the service's worker would spend; linking and hashing, the same in every
variant, included). asyncpg and orjson are no dependencies of the service: ``pip install -e '.[bench]'``
(``make bench`` does) installs them.

Run from the project root, with PostgreSQL reachable (TEST_POSTGRES_ADMIN_URL, as for the tests)::

    .venv/bin/python bench/driver_choice.py
    .venv/bin/python bench/driver_choice.py --batch 1 16 64 --seconds 4 --rounds 3
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
import orjson
import psycopg
from audit_appends import DEFAULT_ADMIN_URL, IL6, _run, fresh_database, machine_facts
from psycopg.types.json import Jsonb, set_json_dumps
from sqlalchemy import Table, insert, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection
from verify_chain import Filler, bench_settings, service_engine

from app.domain.audit import ChainHead, next_link, record_hash, to_record
from app.store.database import create_session_factory
from app.store.models import Assessment
from app.store.repositories import CHAIN_LOCK, NewAssessment
from app.store.unit_of_work import UnitOfWork

TABLE = cast(Table, Assessment.__table__)
COLUMNS = [column.name for column in TABLE.c]
DOCUMENTS = ("input", "decision")
HEAD_SQL = (
    "SELECT now(), h.seq, h.hash, h.recorded_at FROM (SELECT 1) AS one LEFT JOIN LATERAL "
    "(SELECT seq, hash, recorded_at FROM assessment ORDER BY seq DESC LIMIT 1) AS h ON true"
)
LOCK_SQL = f"SELECT pg_advisory_xact_lock({CHAIN_LOCK})"
PSYCOPG_INSERT = "INSERT INTO assessment ({}) VALUES ({})".format(  # noqa: S608 - the table's own columns
    ", ".join(COLUMNS), ", ".join(["%s"] * len(COLUMNS))
)
ASYNCPG_INSERT = "INSERT INTO assessment ({}) VALUES ({})".format(  # noqa: S608 - the table's own columns
    ", ".join(COLUMNS), ", ".join(f"${index + 1}" for index in range(len(COLUMNS)))
)


def linked(head: ChainHead, now: datetime, news: Sequence[NewAssessment]) -> list[dict[str, Any]]:
    """The rows the writer inserts after ``head``: linked, stamped and hashed by the service's code."""
    rows = []
    for new in news:
        seq, prev_hash, recorded_at = next_link(head, now)
        values = {**vars(new), "seq": seq, "prev_hash": prev_hash, "recorded_at": recorded_at}
        values["hash"] = record_hash(to_record(values))
        rows.append(values)
        head = ChainHead(seq, values["hash"], recorded_at)
    return rows


def head_of(row: Sequence[Any]) -> tuple[datetime, ChainHead]:
    now, seq, hash_, recorded_at = row
    return now, ChainHead.empty() if seq is None else ChainHead(seq, hash_, recorded_at)


Append = Callable[[Sequence[NewAssessment]], Awaitable[None]]
"""One transaction appending these decisions."""


async def service_append(unit_of_work: Callable[[], UnitOfWork], news: Sequence[NewAssessment]) -> None:
    async with unit_of_work() as uow:
        await uow.assessments.append(news)
        await uow.commit()


async def core_append(connection: AsyncConnection, news: Sequence[NewAssessment]) -> None:
    async with connection.begin():
        await connection.execute(text(LOCK_SQL))
        now, head = head_of((await connection.execute(text(HEAD_SQL))).one())
        await connection.execute(insert(TABLE), linked(head, now, news))


async def psycopg_append(connection: psycopg.AsyncConnection[Any], news: Sequence[NewAssessment]) -> None:
    async with connection.transaction():
        await connection.execute(LOCK_SQL)
        cursor = await connection.execute(HEAD_SQL)
        row = await cursor.fetchone()
        now, head = head_of(cast(Sequence[Any], row))
        rows = linked(head, now, news)
        await cursor.executemany(
            PSYCOPG_INSERT,
            [[Jsonb(row[name]) if name in DOCUMENTS else row[name] for name in COLUMNS] for row in rows],
        )


async def asyncpg_append(connection: asyncpg.Connection, news: Sequence[NewAssessment]) -> None:
    async with connection.transaction():
        await connection.execute(LOCK_SQL)
        now, head = head_of(await connection.fetchrow(HEAD_SQL))
        rows = linked(head, now, news)
        await connection.executemany(ASYNCPG_INSERT, [[row[name] for name in COLUMNS] for row in rows])


@dataclass(frozen=True)
class Round:
    transactions: int
    records: int
    seconds: float
    cpu_s: float
    median_ms: float


async def timed(
    append: Append, make: Callable[[int], list[NewAssessment]], batch: int, seconds: float
) -> Round:
    """Transactions of ``batch`` decisions, one after another, for ``seconds``; decisions made beforehand."""
    pending = make(max(1, round(4000 / batch)) * batch)
    latencies: list[float] = []
    records = 0
    cpu_started, started = time.process_time(), time.perf_counter()
    while time.perf_counter() - started < seconds:
        if len(pending) < batch:
            cpu_paused = time.process_time()
            pending += make(max(1, round(4000 / batch)) * batch)  # making decisions is not measured
            cpu_started += time.process_time() - cpu_paused
        chunk, pending = pending[:batch], pending[batch:]
        began = time.perf_counter()
        await append(chunk)
        latencies.append(time.perf_counter() - began)
        records += batch
    elapsed = time.perf_counter() - started
    return Round(
        len(latencies),
        records,
        elapsed,
        time.process_time() - cpu_started,
        1000 * statistics.median(latencies),
    )


def line(name: str, batch: int, rounds: list[Round]) -> str:
    middle = sorted(rounds, key=lambda r: r.records / r.seconds)[len(rounds) // 2]
    per_s = middle.transactions / middle.seconds, middle.records / middle.seconds
    return (
        f"{name:<16} {batch:>5} {per_s[0]:>10.0f} {per_s[1]:>10.0f} "
        f"{middle.median_ms:>9.2f} {1e6 * middle.cpu_s / middle.records:>12.0f}"
    )


async def run(args: argparse.Namespace, database_url: str, state: Path) -> None:
    settings = bench_settings(database_url, state)
    owner = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with service_engine(settings) as engine:
        unit_of_work = partial(UnitOfWork, create_session_factory(engine))
        filler = Filler(unit_of_work, 1000)
        counter = iter(range(1, 10**9))

        def make(count: int) -> list[NewAssessment]:
            return [filler._new(next(counter)) for _ in range(count)]

        core = await engine.connect()
        plain = await psycopg.AsyncConnection.connect(owner, autocommit=True)
        with_orjson = await psycopg.AsyncConnection.connect(owner, autocommit=True)
        set_json_dumps(orjson.dumps, with_orjson)
        raw = await asyncpg.connect(owner)
        raw_orjson = await asyncpg.connect(owner)
        await raw.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        await raw_orjson.set_type_codec(
            "jsonb",
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )
        variants: dict[str, Append] = {
            "service": partial(service_append, unit_of_work),
            "sqlalchemy-core": partial(core_append, core),
            "psycopg": partial(psycopg_append, plain),
            "psycopg+orjson": partial(psycopg_append, with_orjson),
            "asyncpg": partial(asyncpg_append, raw),
            "asyncpg+orjson": partial(asyncpg_append, raw_orjson),
        }
        try:
            for append in variants.values():  # warm-up: prepared statements, caches
                await timed(append, make, args.batch[-1], 0.5)
            results: dict[tuple[str, int], list[Round]] = {}
            for round_number in range(args.rounds):
                for batch in args.batch:
                    for name, append in variants.items():
                        results.setdefault((name, batch), []).append(
                            await timed(append, make, batch, args.seconds)
                        )
                print(f"round {round_number + 1} of {args.rounds} done", flush=True)
        finally:
            await core.close()
            await plain.close()
            await with_orjson.close()
            await raw.close()
            await raw_orjson.close()
        print()
        print(f"{'variant':<16} {'B':>5} {'txn/s':>10} {'records/s':>10} {'p50 ms':>9} {'CPU µs/rec':>12}")
        for batch in args.batch:
            for name in variants:
                print(line(name, batch, results[(name, batch)]))
        async with unit_of_work() as uow:
            verification = await uow.assessments.head()
        print(f"chain head after the run: seq {verification[1].seq}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[1, 16, 64], help="Decisions per transaction."
    )
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="Seconds per variant, batch and round (3)."
    )
    parser.add_argument("--rounds", type=int, default=3, help="Rounds; the median is printed (3).")
    parser.add_argument("--admin-url", default=os.environ.get("TEST_POSTGRES_ADMIN_URL", DEFAULT_ADMIN_URL))
    args = parser.parse_args()
    admin_url = make_url(args.admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    for fact in machine_facts(admin_url, None):
        print(fact)
    print(
        f"drivers: psycopg {psycopg.__version__}, asyncpg {asyncpg.__version__}, orjson {orjson.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="il6-bench-") as scratch, fresh_database(admin_url) as url:
        state = Path(scratch)
        environment = {
            **{key: value for key, value in os.environ.items() if not key.startswith("IL6_")},
            "DATABASE_URL": url,
        }
        _run([str(IL6), "db", "upgrade"], environment, state)
        _run(
            [str(IL6), "audit", "keygen", "--output", str(state / "audit-signing-key.pem")],
            environment,
            state,
        )
        asyncio.run(run(args, url, state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
