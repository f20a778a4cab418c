"""Audit appends per second of the real service on a fresh PostgreSQL database, and of its floor.

A benchmark, not a test. It creates a database ``il6_bench_<hex>``, migrates it (``il6 db upgrade``),
provisions a signing key (``il6 audit keygen``), creates an API key with every scope for every site
(``il6 keys create``, as the service's login, as an operator does), starts the service as deployed
(``uvicorn app.main:create_app --factory``, production environment, ``--workers N`` (1 unless told),
``--no-access-log``), and drives ``POST /v1/assessments`` (each request with its own Idempotency-Key and
subject, and the key as its bearer credential) at each concurrency for a fixed time. It then checks the
database holds the 201s counted and that ``GET /v1/audit/verify`` is intact, stops the service and drops
the database (and with it the key).

Then, in the same run, the floor: ``bench/floor_app.py``, a bare FastAPI endpoint at the same path that
validates the same request model (``AssessmentIn``) and answers 201, with no database, authentication or
middleware, started by the same uvicorn command line (same ``--workers``, ``--no-access-log``, the same
automatic choice of event loop and HTTP parser) and driven by the same load generator with the same
requests at the same concurrencies. An appends/s figure alone does not say whether it is good on this
machine; as a share of the floor it does: what is missing is what the service adds (authentication, the
exact JSON reading, the decision, the audit append and its commit, the larger answer). The floor runs
after the service is stopped and the database dropped, so that neither takes CPU from it (PostgreSQL may
still be writing out what the service committed). It prints, per concurrency, requests/s, p50 and p99
for both and the service's throughput as a percentage of the floor's.

The service runs with ``IL6_RATE_LIMIT_PER_MINUTE=0`` (no rate limit): the one bench caller sends far more
than a caller's allowance, and a 429 would measure the limiter, not the appends. The key never appears in
the output: it goes to the load generators through the environment (``BENCH_API_KEY``), not the command
line or a file. The floor ignores it; it is sent anyway, so that both servers read the same requests.

Run from the project root, with PostgreSQL reachable (TEST_POSTGRES_ADMIN_URL, as for the tests)::

    .venv/bin/python bench/audit_appends.py                      # wrk when installed, else httpx
    .venv/bin/python bench/audit_appends.py --loadgen httpx --duration 10 --concurrency 16 64
    .venv/bin/python bench/audit_appends.py --loadgen wrk --duration 10 --workers 2
    .venv/bin/python bench/audit_appends.py --classifier model   # a fitted scikit-learn version decides
    .venv/bin/python bench/audit_appends.py --server granian     # another server for both (SERVERS)

With ``--classifier model`` (bench/model_version.py) a scikit-learn version is fitted on a synthetic cohort,
registered and activated with the ``il6`` command before the service starts, and every request names it;
a third server then runs: the floor calling that model's ``predict_proba`` once per request, which is what
serving the model directly would cost (the service compiles it to its cutoff instead).

Load generators: ``wrk`` (a Lua script written to a temporary file makes each request unique and counts
the 201s), or, without wrk, an asyncio httpx loop in a separate process. The httpx loop lets in-flight
requests finish at the end, so the rows must equal the 201s counted exactly; wrk stops with requests in
flight that the server may still record, so there the rows may exceed the 201s by at most that many.
On a small machine the load generator, the server and PostgreSQL share the CPUs: the httpx generator in
particular is CPU-bound itself, so its figures are a lower bound on the server's, for the floor even more
than for the service (the faster the server, the larger the generator's share of the CPUs).
With more than one worker, ``/readyz`` answering says one worker is up, not all: the warm-up stage, run
before each server's measured stages, is what lets the others start.
"""

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import mlflow_peer
import model_version
import psycopg
from psycopg import sql
from sqlalchemy import make_url

import app
from app.domain.access import API_KEY

BIN = Path(sys.executable).parent
IL6 = BIN / "il6"
UVICORN = BIN / "uvicorn"
PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
READY_TIMEOUT_S = 30.0
PATH = "/v1/assessments"
RESULT_PREFIX = "BENCH_RESULT "
KEY_ENVIRONMENT = "BENCH_API_KEY"
"""How the API key reaches the load generators: the environment, never their command line (``ps``) or a
file (the wrk script reads it with ``os.getenv``)."""

CLASSIFIER_ENVIRONMENT = "BENCH_CLASSIFIER"
"""The classifier every request names, when the run is told one (``--classifier model``): set in this
process's environment, so that the httpx load generator's processes send the same requests."""


def body_template() -> str:
    """A valid submission; %s is the subject id (also used as the Idempotency-Key: both must be unique).
    An exact value, so that a fitted version's cutoff (not the limit of detection alone) places it."""
    classifier = os.environ.get(CLASSIFIER_ENVIRONMENT)
    return (
        '{"subject_id":"%s","site_id":"PIT",'
        '"il6":{"value":12.5,"unit":"pg/mL","assay":"elecsys-il6"},'
        '"specimen":{"type":"serum","collected_at":"2026-11-20T09:30:00Z"}'
        + ("" if classifier is None else f',"classifier":"{classifier}"')
        + "}"
    )


WRK_SCRIPT = """
local threads = {}
local counter = 0
created = 0
answered = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local authorization = "Bearer " .. assert(os.getenv("%(key_environment)s"), "%(key_environment)s is not set")

function init(args)
  tag = "%(tag)s-" .. tid
end

function request()
  counter = counter + 1
  local key = tag .. "-" .. counter
  local headers = {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key,
    ["Authorization"] = authorization,
  }
  return wrk.format("POST", "%(path)s", headers, string.format('%(body)s', key))
end

function response(status, headers, body)
  if status == %(success)d then created = created + 1 end
  answered[status] = (answered[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = 0
  local statuses = {}
  for _, thread in ipairs(threads) do
    total = total + thread:get("created")
    for status, count in pairs(thread:get("answered")) do
      statuses[#statuses + 1] = string.format('{"%%d":%%d}', status, count)
    end
  end
  local e = summary.errors
  io.write(string.format(
    '%(prefix)s{"created":%%d,"requests":%%d,"elapsed_s":%%.6f,"p50_ms":%%.3f,"p99_ms":%%.3f,' ..
    '"errors":{"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d,"status":%%d},"statuses":[%%s]}\\n',
    total, summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect, e.read, e.write, e.timeout, e.status, table.concat(statuses, ",")))
end
"""


@dataclass(frozen=True)
class StageResult:
    concurrency: int
    created: int
    requests: int
    elapsed_s: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    transport_errors: int
    cpu: "StageCpu | None" = None
    """CPU seconds the server and PostgreSQL used during the stage (``with_cpu``), when measured."""

    @property
    def appends_per_s(self) -> float:
        return self.created / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def cpu_us_per_ok(self, seconds: float) -> float:
        return 1e6 * seconds / self.created if self.created else 0.0


@dataclass(frozen=True)
class StageCpu:
    server_s: float
    database_s: float


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, str, float]]:
    """Every process: its parent, its name and the CPU seconds it has used (user and system), from /proc."""
    table: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS)
    return table


def cpu_seconds(server_pid: int) -> StageCpu:
    """CPU seconds used so far by the server process with its workers (its descendants), and by every
    PostgreSQL process: what a stage costs each side, whatever else the machine runs meanwhile. (A
    descendant that exited meanwhile is not counted: the servers keep their workers.)"""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    server_s, pending = 0.0, [server_pid] if server_pid in table else []
    while pending:
        pid = pending.pop()
        server_s += table[pid][2]
        pending += children.get(pid, [])
    database_s = sum(used for _, name, used in table.values() if name == "postgres")
    return StageCpu(server_s, database_s)


def with_cpu(server_pid: int | None, run: Callable[[], StageResult]) -> StageResult:
    """``run()``'s result with the CPU the server and PostgreSQL used meanwhile (Linux only)."""
    if server_pid is None or not Path("/proc/self/stat").exists():
        return run()
    before = cpu_seconds(server_pid)
    result = run()
    after = cpu_seconds(server_pid)
    return replace(
        result,
        cpu=StageCpu(after.server_s - before.server_s, after.database_s - before.database_s),
    )


def _percentile(sorted_values: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(percent / 100 * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# --- the httpx load generator (runs in its own process: `audit_appends.py --httpx-worker ...`) ---


async def _httpx_load(url: str, concurrency: int, duration_s: float, tag: str) -> StageResult:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    transport_errors = 0
    counter = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json", **bearer(os.environ[KEY_ENVIRONMENT])}
    template = body_template()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        started = time.perf_counter()
        deadline = started + duration_s

        async def worker() -> None:
            nonlocal counter, transport_errors
            while time.perf_counter() < deadline:
                counter += 1
                key = f"{tag}-{counter}"
                sent = time.perf_counter()
                try:
                    response = await client.post(
                        PATH,
                        content=(template % key).encode(),
                        headers={**headers, "Idempotency-Key": key},
                    )
                except httpx.TransportError:
                    transport_errors += 1
                    continue
                latencies.append((time.perf_counter() - sent) * 1000)
                statuses[str(response.status_code)] += 1

        # Past the deadline each worker finishes the request it has in flight: every 201 is counted.
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return StageResult(
        concurrency=concurrency,
        created=statuses["201"],
        requests=len(latencies) + transport_errors,
        elapsed_s=elapsed,
        p50_ms=_percentile(latencies, 50),
        p99_ms=_percentile(latencies, 99),
        statuses=dict(statuses),
        transport_errors=transport_errors,
    )


def _httpx_worker_main(url: str, concurrency: int, duration_s: float, tag: str) -> None:
    result = asyncio.run(_httpx_load(url, concurrency, duration_s, tag))
    document = {**vars(result)}
    print(RESULT_PREFIX + json.dumps(document), flush=True)


def _result_line(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            parsed: dict[str, Any] = json.loads(line.removeprefix(RESULT_PREFIX))
            return parsed
    raise RuntimeError(f"the load generator printed no result:\n{output}")


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def run_httpx(url: str, concurrency: int, duration_s: float, api_key: str) -> StageResult:
    """The httpx loop in a separate process, so that it does not share an interpreter with this one."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--httpx-worker",
        "--url",
        url,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration_s),
        "--tag",
        f"h{secrets.token_hex(4)}c{concurrency}",
    ]
    completed = subprocess.run(  # noqa: S603 - our own interpreter and script, no shell
        command,
        env={**os.environ, KEY_ENVIRONMENT: api_key},
        capture_output=True,
        text=True,
        timeout=duration_s + 120,
        check=True,
    )
    found = _result_line(completed.stdout)
    return StageResult(
        concurrency=concurrency,
        created=int(found["created"]),
        requests=int(found["requests"]),
        elapsed_s=float(found["elapsed_s"]),
        p50_ms=float(found["p50_ms"]),
        p99_ms=float(found["p99_ms"]),
        statuses={str(status): int(count) for status, count in found["statuses"].items()},
        transport_errors=int(found["transport_errors"]),
    )


def run_wrk(
    wrk: str,
    url: str,
    concurrency: int,
    duration_s: float,
    scratch: Path,
    api_key: str,
    *,
    path: str = PATH,
    body: str | None = None,
    success: int = 201,
) -> StageResult:
    """wrk at ``concurrency`` for ``duration_s``: POST ``body`` (the service's submission unless given) to
    ``path``; ``created`` counts the answers with status ``success``."""
    tag = f"w{secrets.token_hex(4)}c{concurrency}"
    script = scratch / f"post-{tag}.lua"
    script.write_text(
        WRK_SCRIPT
        % {
            "tag": tag,
            "path": path,
            "body": (body_template() if body is None else body).replace("'", "\\'"),
            "prefix": RESULT_PREFIX,
            "key_environment": KEY_ENVIRONMENT,
            "success": success,
        },
        encoding="utf-8",
    )
    threads = max(1, min(concurrency, os.cpu_count() or 1))
    command = [
        wrk,
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{duration_s:g}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    completed = subprocess.run(  # noqa: S603 - wrk found on PATH by shutil.which, no shell
        command,
        env={**os.environ, KEY_ENVIRONMENT: api_key},
        capture_output=True,
        text=True,
        timeout=duration_s + 120,
        check=True,
    )
    found = _result_line(completed.stdout)
    errors = found["errors"]
    by_status: Counter[str] = Counter()
    for pair in found["statuses"]:
        for status, count in pair.items():
            by_status[str(status)] += int(count)
    return StageResult(
        concurrency=concurrency,
        created=int(found["created"]),
        requests=int(found["requests"]),
        elapsed_s=float(found["elapsed_s"]),
        p50_ms=float(found["p50_ms"]),
        p99_ms=float(found["p99_ms"]),
        statuses=dict(by_status),
        transport_errors=sum(int(errors[name]) for name in ("connect", "read", "write", "timeout")),
    )


# --- the database and the service ---


@contextmanager
def fresh_database(admin_url: str, prefix: str = "il6_bench_") -> Iterator[str]:
    """A new database ``<prefix><hex>``, as a service DATABASE_URL; dropped (WITH FORCE) afterwards.
    The other benchmarks in this directory use it too."""
    name = f"{prefix}{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield (
            make_url(admin_url)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


SERVICE_LOGIN = "il6_bench_service"
SERVICE_LOGIN_SQL = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'il6_bench_service') THEN
        CREATE ROLE il6_bench_service LOGIN IN ROLE il6_app;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$
"""


def service_environment(database_url: str, state: Path, pool_size: int | None) -> dict[str, str]:
    """The service's environment; without a rate limit (one caller sends all the load)."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("IL6_") and key != "DATABASE_URL"
    }
    environment = {
        **inherited,
        "DATABASE_URL": database_url,
        "IL6_ENVIRONMENT": "production",
        "IL6_SIGNING_KEY_FILE": str(state / "audit-signing-key.pem"),
        "IL6_CHECKPOINT_FILE": str(state / "audit-checkpoints.jsonl"),
        "PYTHONUNBUFFERED": "1",
        "IL6_RATE_LIMIT_PER_MINUTE": "0",
    }
    if pool_size is not None:
        environment["IL6_DB_POOL_SIZE"] = str(pool_size)
    return environment


def _run(command: list[str], environment: dict[str, str], cwd: Path) -> str:
    """Runs a command of the project's; its standard output (never shown: it can be a secret). A failure
    raises with its standard error only."""
    completed = subprocess.run(  # noqa: S603 - the project's own scripts, no shell
        command, env=environment, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {completed.returncode}:\n{completed.stderr}")
    return completed.stdout


def create_api_key(environment: dict[str, str], cwd: Path) -> str:
    """``il6 keys create`` with every scope for every site, as an operator runs it beside the service (as
    its login); the secret it prints on standard output, which this script never prints."""
    output = _run(
        [
            str(IL6),
            "keys",
            "create",
            "--name",
            f"bench-{secrets.token_hex(4)}",
            "--scopes",
            "assess,read,admin",
            "--sites",
            "*",
            "--reason",
            "bench/audit_appends.py load generator",
        ],
        environment,
        cwd,
    )
    secret = output.strip()
    if not API_KEY.fullmatch(secret):
        raise RuntimeError("il6 keys create printed no API key on standard output")
    return secret


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


SERVICE_APP = ["app.main:create_app", "--factory"]
FLOOR_APP = ["floor_app:app", "--app-dir", str(PROJECT / "bench")]
"""The two uvicorn targets; everything else on their command lines is the same (``uvicorn_command``)."""


def uvicorn_command(target: list[str], port: int, workers: int) -> list[str]:
    """One uvicorn command line for the service and the floor alike: loopback, ``workers`` processes, no
    access log, and uvicorn's own choice of event loop and HTTP parser (``auto``: uvloop and httptools
    when installed, as ``uvicorn[standard]`` installs them), so that the two differ only in the app."""
    return [
        str(UVICORN),
        *target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
    ]


SERVERS = ("uvicorn", "uvicorn-asyncio-h11", "granian")
"""``--server``: uvicorn as deployed (its ``auto`` loop and parser: uvloop and httptools), uvicorn on the
standard library's asyncio loop and the pure-Python h11 parser, or granian (Rust HTTP server, ASGI, uvloop),
when installed (``pip install granian``: it is no dependency of the service)."""
GRANIAN = BIN / "granian"


def server_command(server: str, target: list[str], port: int, workers: int) -> list[str]:
    """The command line of ``server`` for a uvicorn-style ``target`` (``app`` [``--factory``] [``--app-dir``
    DIR]), on loopback with ``workers`` processes and no access log."""
    if server == "uvicorn":
        return uvicorn_command(target, port, workers)
    if server == "uvicorn-asyncio-h11":
        return [*uvicorn_command(target, port, workers), "--loop", "asyncio", "--http", "h11"]
    app, options = target[0], target[1:]
    command = [str(GRANIAN), "--interface", "asgi", "--loop", "uvloop", "--no-access-log"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if "--factory" in options:
        command.append("--factory")
    if "--app-dir" in options:
        command += ["--working-dir", options[options.index("--app-dir") + 1]]
    return [*command, app]


def floor_environment() -> dict[str, str]:
    """The floor's environment: this one without the service's settings, which the floor does not read."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("IL6_") and key != "DATABASE_URL"
    }
    return {**inherited, "PYTHONUNBUFFERED": "1"}


SERVER_PIDS: dict[str, int] = {}
"""The process of each server ``running_server`` started, by its base URL (for ``with_cpu``)."""


@contextmanager
def running_server(
    target: list[str],
    workers: int,
    environment: dict[str, str],
    cwd: Path,
    log_path: Path,
    *,
    command_for: Callable[[int], list[str]] | None = None,
    ready_path: str = "/readyz",
) -> Iterator[str]:
    """uvicorn (``uvicorn_command``, or ``command_for(port)``); its base URL once ``ready_path`` answers
    200; SIGTERM after."""
    port = _free_port()
    command = uvicorn_command(target, port, workers) if command_for is None else command_for(port)
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - the project's own uvicorn, no shell
            command, env=environment, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    base_url = f"http://127.0.0.1:{port}"
    SERVER_PIDS[base_url] = process.pid
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        with httpx.Client(base_url=base_url, timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{target[0]} exited with {process.returncode}; see {log_path}")
                try:
                    if client.get(ready_path).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{target[0]} was not ready in time")
                time.sleep(0.1)
        yield base_url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def settled_row_count(database_url: str, quiet_s: float = 1.0, timeout_s: float = 60.0) -> int:
    """The number of audit records once it has not changed for ``quiet_s`` (as the owner, directly)."""
    owner = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    deadline = time.monotonic() + timeout_s
    last = -1
    with psycopg.connect(owner, autocommit=True, connect_timeout=5) as connection:
        while True:
            row = connection.execute("SELECT count(*) FROM assessment").fetchone()
            count = 0 if row is None else int(row[0])
            if count == last or time.monotonic() > deadline:
                return count
            last = count
            time.sleep(quiet_s)


def machine_facts(admin_url: str, wrk: str | None) -> list[str]:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        row = admin.execute("SHOW server_version").fetchone()
    postgres = "?" if row is None else str(row[0])
    facts = [
        f"date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"nproc: {os.cpu_count()}",
        f"machine: {platform.machine()} {platform.platform()}",
        f"python: {platform.python_version()}",
        f"postgresql: {postgres}",
    ]
    facts.append(f"code: {code_version()}")
    if wrk is not None:
        version = subprocess.run(  # noqa: S603 - wrk found on PATH, no shell
            [wrk, "-v"], capture_output=True, text=True, timeout=10, check=False
        )
        facts.append(f"wrk: {(version.stdout or version.stderr).splitlines()[0]}")
    return facts


def code_version() -> str:
    """The commit of the code the service runs (the ``app`` package this benchmark imports, which the
    service's processes import too), and whether it differs from that commit: figures are per commit."""
    root = Path(app.__file__).resolve().parent.parent
    git = shutil.which("git")
    if git is None:
        return "unknown (no git)"
    head = subprocess.run(  # noqa: S603 - git found on PATH, no shell
        [git, "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    )
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    changed = subprocess.run(  # noqa: S603 - git found on PATH, no shell
        [git, "status", "--porcelain", "--", "app", "migrations", "pyproject.toml"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return head.stdout.strip() + (" with uncommitted changes" if changed.stdout.strip() else "")


def _installed(distribution: str) -> str:
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return f"no {distribution}"


def server_facts(workers: int, server: str = "uvicorn") -> str:
    """What both server command lines run on: this interpreter's environment is the one ``UVICORN`` is in,
    so what is installed here is what uvicorn's ``auto`` loop and parser pick (uvloop, httptools, when
    present; asyncio and h11 otherwise)."""
    libraries = f"{_installed('fastapi')}, {_installed('pydantic')}"
    if server == "granian":
        return (
            f"server: {_installed('granian')}, --interface asgi --loop uvloop ({_installed('uvloop')}) "
            f"--workers {workers} --no-access-log; {libraries}"
        )
    if server == "uvicorn-asyncio-h11":
        return (
            f"server: {_installed('uvicorn')}, --workers {workers} --no-access-log, --loop asyncio "
            f"--http h11 ({_installed('h11')}); {libraries}"
        )
    return (
        f"server: {_installed('uvicorn')}, --workers {workers} --no-access-log, loop auto "
        f"({_installed('uvloop')}), http auto ({_installed('httptools')}); {libraries}"
    )


def _other(result: StageResult, success: str = "201") -> dict[str, int]:
    """A stage's answers other than ``success``, and its transport errors."""
    other = {status: n for status, n in result.statuses.items() if status != success}
    if result.transport_errors:
        other["transport errors"] = result.transport_errors
    return other


def _stage_line(label: str, result: StageResult, success: str = "201") -> str:
    cpu = f"{'-':>9} {'-':>8}"
    if result.cpu is not None:
        server, database = (result.cpu_us_per_ok(s) for s in (result.cpu.server_s, result.cpu.database_s))
        cpu = f"{server:>9.0f} {database:>8.0f}"
    return (
        f"{label:<{LABEL_WIDTH}} {result.concurrency:>5} {result.appends_per_s:>9.1f} {result.p50_ms:>8.1f} "
        f"{result.p99_ms:>8.1f} {result.created:>7} {cpu}  {_other(result, success) or '-'}"
    )


LABEL_WIDTH = 10
"""The stage line's first column: the longest label (bench/store_growth.py's ``control-12``, say) fits."""
STAGE_HEADER = (
    f"{'server':<{LABEL_WIDTH}} {'conns':>5} {'ok/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ok':>7} "
    f"{'srv µs/ok':>9} {'db µs/ok':>8}  other"
)
"""ok: answers with the server's success status (201 for the service and the floors, 200 for MLflow);
srv µs/ok, db µs/ok: CPU the server (all its processes) and PostgreSQL (all its processes) used per ok
answer during the stage, which other load on the machine does not inflate as it does the throughput."""


def comparison_table(service: list[StageResult], floor: list[StageResult]) -> list[str]:
    """Per concurrency: the service's and the floor's 201s per second, p50 and p99, and the service's
    throughput as a percentage of the floor's."""
    lines = [
        f"{'conns':>5} {'service/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'floor/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>7}"
    ]
    for ours, bare in zip(service, floor, strict=True):
        ratio = (
            f"{100 * ours.appends_per_s / bare.appends_per_s:>6.1f}%" if bare.appends_per_s > 0 else "      -"
        )
        lines.append(
            f"{ours.concurrency:>5} {ours.appends_per_s:>10.1f} {ours.p50_ms:>8.1f} {ours.p99_ms:>8.1f} "
            f"{bare.appends_per_s:>10.1f} {bare.p50_ms:>8.1f} {bare.p99_ms:>8.1f} {ratio}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds per concurrency (15).")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[16, 64], help="Connections per stage (16 64)."
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="Unreported seconds first, per server (3).")
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn --workers, for the service and the floor (1)."
    )
    parser.add_argument("--loadgen", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument(
        "--classifier",
        choices=["rules", "model"],
        default="rules",
        help="rules: the bundled default; model: a scikit-learn version fitted on a synthetic cohort, "
        "activated, and named by every request (and a third server: the floor calling predict_proba).",
    )
    parser.add_argument(
        "--peer-mlflow",
        metavar="PYTHON",
        help="With --classifier model and wrk: also serve the model with MLflow's scoring server, run by "
        "this Python (which has mlflow; see bench/mlflow_peer.py).",
    )
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="uvicorn",
        help="The HTTP server for the service and the floor alike (uvicorn, as deployed).",
    )
    parser.add_argument("--pool-size", type=int, default=None, help="IL6_DB_POOL_SIZE (service default).")
    parser.add_argument("--admin-url", default=os.environ.get("TEST_POSTGRES_ADMIN_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--httpx-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.httpx_worker:
        _httpx_worker_main(args.url, args.concurrency[0], args.duration, args.tag)
        return 0
    if args.workers < 1:
        parser.error("--workers must be at least 1")

    admin_url = make_url(args.admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    found_wrk = shutil.which("wrk")
    if args.loadgen == "wrk" and found_wrk is None:
        parser.error("wrk is not installed (apt-get install wrk), or use --loadgen httpx")
    wrk = found_wrk if args.loadgen in ("auto", "wrk") else None
    for fact in machine_facts(admin_url, found_wrk):
        print(fact)
    if args.server == "granian" and not GRANIAN.exists():
        parser.error("granian is not installed in this environment (pip install granian)")
    print(server_facts(args.workers, args.server))
    print(f"load generator: {'wrk' if wrk else 'httpx (separate process)'}; {args.duration:g} s per stage")
    print("service: IL6_RATE_LIMIT_PER_MINUTE=0 (no rate limit); requests carry a bench API key (not shown)")
    print(
        "floor: bench/floor_app.py (AssessmentIn validated, 201; no database, authentication, middleware "
        "or FastAPI telemetry)"
    )

    def command_for(target: list[str]) -> Callable[[int], list[str]]:
        return lambda port: server_command(args.server, target, port, args.workers)

    def stage(url: str, concurrency: int, duration_s: float, scratch: Path, api_key: str) -> StageResult:
        if wrk is not None:
            return run_wrk(wrk, url, concurrency, duration_s, scratch, api_key)
        return run_httpx(url, concurrency, duration_s, api_key)

    def stages(
        label: str, url: str, scratch: Path, api_key: str
    ) -> tuple[StageResult | None, list[StageResult]]:
        """The warm-up (not printed), then one stage per concurrency, each printed as it ends. The same for
        the service and the floor: the same stages, the same requests."""
        warm = stage(url, args.concurrency[0], args.warmup, scratch, api_key) if args.warmup > 0 else None
        measured: list[StageResult] = []
        for concurrency in args.concurrency:
            result = with_cpu(
                SERVER_PIDS.get(url), partial(stage, url, concurrency, args.duration, scratch, api_key)
            )
            measured.append(result)
            print(_stage_line(label, result), flush=True)
        return warm, measured

    with tempfile.TemporaryDirectory(prefix="il6-bench-") as scratch_name:
        scratch = Path(scratch_name)
        with fresh_database(admin_url) as url:
            environment = service_environment(url, scratch, args.pool_size)
            _run([str(IL6), "db", "upgrade"], environment, scratch)
            _run(
                [str(IL6), "audit", "keygen", "--output", str(scratch / "audit-signing-key.pem")],
                environment,
                scratch,
            )
            # Production runs on a login that is a member of il6_app and owns nothing (docs/audit.md).
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
                admin.execute(SERVICE_LOGIN_SQL)
            service_url = make_url(url).set(username=SERVICE_LOGIN).render_as_string(hide_password=False)
            serving = {**environment, "DATABASE_URL": service_url}
            api_key = create_api_key(serving, scratch)
            artifact = None
            if args.classifier == "model":
                artifact = model_version.provision(
                    lambda *command: _run([str(IL6), *command], environment, scratch), scratch
                )
                os.environ[CLASSIFIER_ENVIRONMENT] = model_version.NAME  # the load generators send it
                print(f"classifier: {model_version.NAME}@{model_version.VERSION} (synthetic cohort, fitted)")
            print(STAGE_HEADER, flush=True)
            with running_server(
                SERVICE_APP,
                args.workers,
                serving,
                scratch,
                scratch / "server.log",
                command_for=command_for(SERVICE_APP),
            ) as base:
                service_warm, service = stages("service", base, scratch, api_key)
                # Requests a load generator abandoned at its deadline may still be recorded: wait for quiet.
                rows = settled_row_count(url)
                with httpx.Client(base_url=base, timeout=300.0, headers=bearer(api_key)) as client:
                    answer = client.get("/v1/audit/verify")
                if answer.status_code != 200:
                    print(f"GET /v1/audit/verify answered {answer.status_code}: {answer.text[:300]}")
                    return 1
                verification = answer.json()
        # The service is stopped and its database dropped: the floor has the machine to itself (and wrk).
        floor_log = scratch / "floor.log"
        with running_server(
            FLOOR_APP,
            args.workers,
            floor_environment(),
            scratch,
            floor_log,
            command_for=command_for(FLOOR_APP),
        ) as base:
            _, floor = stages("floor", base, scratch, api_key)
        with_model: list[StageResult] = []
        if artifact is not None:
            sklearn_environment = {**floor_environment(), "BENCH_SKLEARN_ARTIFACT": str(artifact)}
            with running_server(
                FLOOR_APP,
                args.workers,
                sklearn_environment,
                scratch,
                scratch / "floor-sklearn.log",
                command_for=command_for(FLOOR_APP),
            ) as base:
                _, with_model = stages("floor+predict_proba", base, scratch, api_key)
        peer: list[StageResult] = []
        if artifact is not None and args.peer_mlflow and wrk is not None:
            model_dir = scratch / "mlflow-model"
            mlflow_peer.save_model(args.peer_mlflow, artifact, model_dir)
            with running_server(
                ["mlflow"],
                args.workers,
                mlflow_peer.environment(args.peer_mlflow),
                scratch,
                scratch / "mlflow.log",
                command_for=mlflow_peer.serve_command(args.peer_mlflow, model_dir, args.workers),
                ready_path=mlflow_peer.READY_PATH,
            ) as base:
                for concurrency in [args.concurrency[0]] * (args.warmup > 0):  # warm-up, not printed
                    run_wrk(wrk, base, concurrency, args.warmup, scratch, api_key,
                            path=mlflow_peer.PATH, body=mlflow_peer.BODY, success=200)  # fmt: skip
                for concurrency in args.concurrency:
                    result = run_wrk(
                        wrk, base, concurrency, args.duration, scratch, api_key,
                        path=mlflow_peer.PATH, body=mlflow_peer.BODY, success=200,
                    )  # fmt: skip
                    peer.append(result)
                    print(_stage_line("mlflow", result, success="200"), flush=True)

    print()
    for line in comparison_table(service, floor):
        print(line)
    print("ratio: service/s as a percentage of floor/s (201s per second, same requests, same concurrency)")
    for theirs, ours in zip(peer, service, strict=False):
        share = f"{100 * ours.appends_per_s / theirs.appends_per_s:.1f}%" if theirs.appends_per_s else "n/a"
        print(
            f"mlflow models serve at {theirs.concurrency}: {theirs.appends_per_s:.1f}/s, "
            f"p50 {theirs.p50_ms:.1f} ms, p99 {theirs.p99_ms:.1f} ms (no audit); the service's audited "
            f"decisions/s are {share} of it"
        )
    for ours, bare in zip(with_model, floor, strict=False):
        share = f"{100 * ours.appends_per_s / bare.appends_per_s:.1f}%" if bare.appends_per_s else "n/a"
        print(
            f"floor+predict_proba at {ours.concurrency}: {ours.appends_per_s:.1f}/s, "
            f"p99 {ours.p99_ms:.1f} ms ({share} of the floor): one scikit-learn call per request, no database"
        )

    # The service's rows hold its warm-up's 201s too.
    counted = [*([service_warm] if service_warm is not None else []), *service]
    created = sum(result.created for result in counted)
    in_flight = sum(result.concurrency + result.transport_errors for result in counted)
    if wrk is None:
        rows_ok = rows == created
        expectation = "rows == 201s"
    else:
        rows_ok = created <= rows <= created + in_flight
        expectation = f"201s <= rows <= 201s + {in_flight} (in flight when wrk stopped)"
    verdict = "OK" if rows_ok else "MISMATCH"
    print(f"service: rows {rows}, 201s counted {created} (warm-up included): {verdict} ({expectation})")
    verified = verification.get("intact") is True and verification.get("checked") == rows
    print(
        f"service: GET /v1/audit/verify: intact={verification.get('intact')} "
        f"checked={verification.get('checked')}"
    )
    floor_ok = all(not _other(result) for result in floor)
    print(f"floor: every answer 201: {'OK' if floor_ok else 'NO (see other, above)'}")
    return 0 if rows_ok and verified and floor_ok else 1


if __name__ == "__main__":
    sys.exit(main())
