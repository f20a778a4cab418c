"""The command line: migrations, the OpenAPI document, classifiers, the audit trail, keys, and a check of
the configuration."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from app.cli_classifiers import install as install_classifier_commands
from app.cli_config import config

if TYPE_CHECKING:
    from app.cli_verify import RangesInProcesses
    from app.domain.audit import Verification
    from app.service.access import KeyInfo, KeyService
    from app.service.audit import AuditService

app = typer.Typer(no_args_is_help=True, help="IL6 eligibility service administration.")
db = typer.Typer(no_args_is_help=True, help="The audit store's schema.")
classifiers = typer.Typer(no_args_is_help=True, help="Classifier versions.")
app.add_typer(db, name="db")
app.add_typer(classifiers, name="classifiers")
audit = typer.Typer(no_args_is_help=True, help="The audit trail: verify it, sign checkpoints, check exports.")
app.add_typer(audit, name="audit")
keys = typer.Typer(no_args_is_help=True, help="API keys: create, list, expire, revoke.")
app.add_typer(keys, name="keys")
app.add_typer(config, name="config")

CheckpointFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--checkpoint",
        help="A checkpoint kept earlier (JSON), or a checkpoint log (one per line); repeatable.",
        exists=True,
        dir_okay=False,
    ),
]


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the configured database (DATABASE_URL) to the newest migration."""
    from app.store.migrations import upgrade

    upgrade()


def openapi_document() -> str:
    import tempfile

    from pydantic import SecretStr

    from app.main import create_app
    from app.service.checkpoints import generate_signing_key
    from app.settings import Settings

    with tempfile.TemporaryDirectory() as scratch:  # the app is only described: a throwaway key signs
        key_file = Path(scratch) / "key.pem"
        generate_signing_key(key_file)  # made here, not by the app, which would log it as its audit key
        settings = Settings(
            database_url=SecretStr("sqlite:///:memory:"),
            signing_key_file=key_file,
            checkpoint_interval_s=0,
        )
        schema = create_app(settings).openapi()
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@app.command("openapi")
def openapi(
    output: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
) -> None:
    """Print (or write) the OpenAPI document generated from the application."""
    document = openapi_document()
    if output is None:
        typer.echo(document, nl=False)
    else:
        output.write_text(document, encoding="utf-8")


@classifiers.command("verify")
def classifiers_verify(
    directory: Annotated[Path | None, typer.Argument(help="A registry directory.")] = None,
) -> None:
    """Load every listed version, check its digest, and list which are served."""
    from app.domain.classifiers.base import ClassifierDefinitionError
    from app.domain.classifiers.registry import load_registry
    from app.ml.model_version import BUILDERS

    try:
        registry = load_registry(directory, BUILDERS)
    except ClassifierDefinitionError as error:
        typer.echo(f"registry refused: {error}", err=True)
        raise typer.Exit(1) from None
    for entry in registry.listing():
        typer.echo(f"ok       {entry.definition.ref}  {entry.status.value:8}  {entry.digest}")
    for rejected in registry.rejected:
        typer.echo(f"REJECTED {rejected.name}@{rejected.version}  {rejected.reason}")
    if registry.rejected:
        raise typer.Exit(1)


def _report(verification: "Verification") -> None:
    if verification.broken is None:
        span = (
            "no records"
            if verification.first_seq is None
            else (f"seq {verification.first_seq}..{verification.last_seq}, head {verification.last_hash}")
        )
        matched = f"{verification.checkpoints} checkpoint(s) matched"
        typer.echo(f"intact: {verification.checked} records ({span}); {matched}")
        return
    broken = verification.broken
    typer.echo(f"BROKEN at seq {broken.seq}: {broken.reason.value}: {broken.explanation}")
    typer.echo(f"  expected {broken.expected}\n  found    {broken.found}")
    typer.echo(f"  {verification.checked} records verified before it")
    raise typer.Exit(1)


@audit.command("keygen")
def audit_keygen(
    output: Annotated[Path, typer.Option(help="Where to write the private key (PKCS#8 PEM, mode 0600).")],
) -> None:
    """Create the Ed25519 key that signs audit checkpoints, and print its public half to publish."""
    from app.service.checkpoints import generate_signing_key, key_id, public_key_text

    try:
        key = generate_signing_key(output)
    except FileExistsError:
        typer.echo(f"{output} exists; refusing to replace a signing key", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"key id:     {key_id(key.public_key())}")
    typer.echo(f"public key: {public_key_text(key.public_key())}")


def _audit_service(ranges: "RangesInProcesses | None" = None, jobs: int = 1) -> "AuditService":
    """The audit service on the configured database; with ``ranges``, a long check's ``jobs`` ranges are
    checked by it (PostgreSQL only: on SQLite a check is one pass). As the service does, it signs a head
    only when the chain extends the last checkpoint in the configured checkpoint log."""
    from functools import partial

    from app.service.audit import AuditService
    from app.service.checkpoints import CheckpointSigner, last_signed, load_signing_key
    from app.settings import get_settings
    from app.store.database import create_engine_for, create_session_factory, verify_ranges
    from app.store.unit_of_work import UnitOfWork

    settings = get_settings()
    signer = CheckpointSigner(load_signing_key(settings.signing_key_file, create=False))
    engine = create_engine_for(settings)
    readers = partial(UnitOfWork, create_session_factory(engine, read_only=True))
    anchor = last_signed(settings.checkpoint_file, signer)
    if ranges is not None and verify_ranges(engine) > 1:
        return AuditService(readers, signer, anchor=anchor, parallel=jobs, range_check=ranges)
    return AuditService(readers, signer, anchor=anchor, parallel=verify_ranges(engine))


@audit.command("verify")
def audit_verify(
    from_seq: Annotated[int, typer.Option(min=1, help="First record to check.")] = 1,
    to_seq: Annotated[int | None, typer.Option(min=1, help="Last record to check.")] = None,
    checkpoint: CheckpointFiles = None,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="On PostgreSQL, check a long chain in up to this many ranges at once, each in a process "
            "of its own (1: two ranges, both in this process).",
        ),
    ] = 1,
) -> None:
    """Verify the configured database's audit chain (DATABASE_URL), and against kept checkpoints.

    Exit status 0 when intact, 1 at the first broken link (printed with its sequence number), 2 when a
    checkpoint is refused, 3 when the chain could not be read (nothing was verified).
    """
    import asyncio
    from concurrent.futures.process import BrokenProcessPool

    from app.cli_verify import RangesInProcesses
    from app.service.checkpoints import InvalidCheckpoint
    from app.service.offline import read_checkpoints
    from app.store.unit_of_work import StoreUnavailable

    ranges = RangesInProcesses(jobs) if jobs > 1 else None
    try:
        kept = [cp for path in checkpoint or [] for cp in read_checkpoints(path)]
        service = _audit_service(ranges, jobs)
        verification = asyncio.run(service.verify(from_seq=from_seq, to_seq=to_seq, checkpoints=kept))
    except InvalidCheckpoint as error:
        typer.echo(f"checkpoint refused: {error}", err=True)
        raise typer.Exit(2) from None
    except StoreUnavailable as error:
        _not_verified(str(error))
    except BrokenProcessPool:
        _not_verified("a worker process stopped before its range was checked")
    finally:
        if ranges is not None:
            ranges.close()
    _report(verification)


def _not_verified(why: str) -> NoReturn:
    """Exit 3: unlike 1, the chain may well be intact; it could not be checked."""
    typer.echo(f"not verified: {why}", err=True)
    raise typer.Exit(3)


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Print a signed checkpoint of the configured database's chain head (JSON), to keep elsewhere.

    Signed only when the chain extends the last checkpoint in the checkpoint log (IL6_CHECKPOINT_FILE), as
    the service signs. Exit status 0 when signed, 1 when the chain does not extend that checkpoint, 3 when
    the chain could not be read; nothing is signed then.
    """
    import asyncio

    from app.service.audit import ChainBroken
    from app.store.unit_of_work import StoreUnavailable

    try:
        checkpoint = asyncio.run(_audit_service().checkpoint())
    except ChainBroken as error:
        typer.echo(f"not signed: {error}", err=True)
        raise typer.Exit(1) from None
    except StoreUnavailable as error:
        typer.echo(f"not signed: {error}", err=True)
        raise typer.Exit(3) from None
    typer.echo(json.dumps(checkpoint.document(), separators=(",", ":")))


@audit.command("verify-export")
def audit_verify_export(
    export: Annotated[Path, typer.Argument(help="An export (NDJSON or CSV).", exists=True, dir_okay=False)],
    checkpoint: CheckpointFiles = None,
    public_key: Annotated[
        str | None,
        typer.Option(
            help="The service's public key (base64, or a PEM file), to check checkpoint signatures."
        ),
    ] = None,
) -> None:
    """Recompute an exported chain offline, without the service or its database.

    Exit status 0 when intact, 1 at the first broken link, 2 when an input cannot be read.
    """
    from app.service.checkpoints import InvalidCheckpoint, parse_public_key
    from app.service.offline import UnreadableExport, read_checkpoints, read_export, verify_records

    try:
        kept = [cp for path in checkpoint or [] for cp in read_checkpoints(path)]
        key = None
        if public_key is not None:
            key_path = Path(public_key)
            key = parse_public_key(key_path.read_text() if key_path.is_file() else public_key)
        with export.open(encoding="utf-8", newline="") as file:
            verification, start = verify_records(read_export(file), kept, key)
    except (InvalidCheckpoint, UnreadableExport) as error:
        typer.echo(f"refused: {error}", err=True)
        raise typer.Exit(2) from None
    if start is not None and start > 1:
        typer.echo(f"note: the export starts at seq {start}; its link to seq {start - 1} is taken as given")
    _report(verification)


def _key_service() -> "KeyService":
    from functools import partial

    from app.service.access import KeyService
    from app.settings import get_settings
    from app.store.database import create_engine_for, create_session_factory
    from app.store.unit_of_work import UnitOfWork

    return KeyService(partial(UnitOfWork, create_session_factory(create_engine_for(get_settings()))))


def _operator() -> str:
    """Who the key's history names for a change made here: the operating-system user."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:64]


def _key_line(info: "KeyInfo") -> str:
    expires = "never" if info.expires_at is None else info.expires_at.isoformat()
    return (
        f"{info.key_id}  {info.name:24}  {info.state.value:8}  "
        f"scopes={','.join(sorted(info.scopes))}  sites={info.sites.describe()}  expires={expires}"
    )


@keys.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="The caller's name, as the audit trail will record it.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: assess, read, admin.")],
    sites: Annotated[str, typer.Option(help="Comma-separated site ids, or * for every site.")],
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Days until it stops working; default: never.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why, for the key's history.")] = None,
) -> None:
    """Create an API key in the configured database and print its secret, once (it is not stored)."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from app.domain.access import parse_scopes, parse_sites
    from app.domain.errors import InvalidInput
    from app.service.access import KeyNameTaken

    try:
        parsed_scopes, parsed_sites = parse_scopes(scopes.split(",")), parse_sites(sites.split(","))
    except ValueError as error:
        typer.echo(f"refused: {error}", err=True)
        raise typer.Exit(2) from None
    expires_at = None if expires_in_days is None else datetime.now(UTC) + timedelta(days=expires_in_days)
    try:
        new = asyncio.run(
            _key_service().create(
                name,
                parsed_scopes,
                parsed_sites,
                created_by=_operator(),
                expires_at=expires_at,
                reason=reason,
            )
        )
    except (KeyNameTaken, InvalidInput) as error:
        typer.echo(f"refused: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(_key_line(new.info), err=True)
    typer.echo("The secret follows, shown only now: keep it in the calling system's secret store.", err=True)
    typer.echo(new.secret)


@keys.command("list")
def keys_list() -> None:
    """List every key (id, name, state, scopes, sites, expiry); never their secrets."""
    import asyncio

    for info in asyncio.run(_key_service().list()):
        typer.echo(_key_line(info))


@keys.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from il6 keys list).")],
    reason: Annotated[str | None, typer.Option(help="Why, for the key's history.")] = None,
) -> None:
    """Revoke a key: refused from the next request on."""
    import asyncio

    from app.service.access import KeyRevoked

    try:
        info = asyncio.run(_key_service().revoke(key_id, by=_operator(), reason=reason))
    except KeyRevoked as error:
        typer.echo(f"refused: {error}", err=True)
        raise typer.Exit(1) from None
    if info is None:
        typer.echo("no key with this id", err=True)
        raise typer.Exit(1)
    typer.echo(_key_line(info))


@keys.command("expire")
def keys_expire(
    key_id: Annotated[str, typer.Argument(help="The key's id (from il6 keys list).")],
    in_days: Annotated[int, typer.Option(min=0, max=3650, help="Days from now; 0: now.")] = 0,
    reason: Annotated[str | None, typer.Option(help="Why, for the key's history.")] = None,
) -> None:
    """Set when a key stops working (now by default)."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from app.domain.errors import InvalidInput
    from app.service.access import KeyRevoked

    at = None if in_days == 0 else datetime.now(UTC) + timedelta(days=in_days)
    try:
        info = asyncio.run(_key_service().expire(key_id, by=_operator(), at=at, reason=reason))
    except (KeyRevoked, InvalidInput) as error:
        typer.echo(f"refused: {error}", err=True)
        raise typer.Exit(1) from None
    if info is None:
        typer.echo("no key with this id", err=True)
        raise typer.Exit(1)
    typer.echo(_key_line(info))


@keys.command("bootstrap")
def keys_bootstrap() -> None:
    """Outside production, on a store with no keys: create a local admin key and write it to
    IL6_LOCAL_ADMIN_KEY_FILE (mode 0600). `make run` runs this before starting the server."""
    import asyncio

    from app.settings import Environment, get_settings

    settings = get_settings()
    path = settings.local_admin_key_file
    if settings.environment is Environment.PRODUCTION:
        typer.echo("refused: production keys are made with il6 keys create", err=True)
        raise typer.Exit(1)
    from app.service.access import KeyNameTaken

    try:
        new = asyncio.run(_key_service().bootstrap_local_admin(path, created_by=_operator()))
    except KeyNameTaken:  # another bootstrap made it at the same moment
        new = None
    if new is not None:
        typer.echo(f"Created the local admin key '{new.info.name}' (every scope, every site).")
        typer.echo(f'It is in {path}; send it as: -H "Authorization: Bearer $(cat {path})"')
    elif path.is_file():
        typer.echo(f"The local admin key is in {path}.")
    else:
        typer.echo("This store has API keys already; make one with: il6 keys create --help")


install_classifier_commands(classifiers)


def main() -> None:
    app()
