"""The command line: migrations, the OpenAPI document, classifiers, and the audit trail."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from app.domain.audit import Verification
    from app.service.audit import AuditService

app = typer.Typer(no_args_is_help=True, help="IL6 eligibility service administration.")
db = typer.Typer(no_args_is_help=True, help="The audit store's schema.")
classifiers = typer.Typer(no_args_is_help=True, help="Classifier versions.")
app.add_typer(db, name="db")
app.add_typer(classifiers, name="classifiers")
audit = typer.Typer(no_args_is_help=True, help="The audit trail: verify it, sign checkpoints, check exports.")
app.add_typer(audit, name="audit")

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
    from app.settings import Settings

    with tempfile.TemporaryDirectory() as scratch:  # the app is only described: a throwaway key signs
        settings = Settings(
            database_url=SecretStr("sqlite:///:memory:"),
            signing_key_file=Path(scratch) / "key.pem",
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

    try:
        registry = load_registry(directory)
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


def _audit_service() -> "AuditService":
    from functools import partial

    from app.service.audit import AuditService
    from app.service.checkpoints import CheckpointSigner, load_signing_key
    from app.settings import get_settings
    from app.store.database import create_engine_for, create_session_factory
    from app.store.unit_of_work import UnitOfWork

    settings = get_settings()
    signer = CheckpointSigner(load_signing_key(settings.signing_key_file, create=False))
    engine = create_engine_for(settings)
    return AuditService(partial(UnitOfWork, create_session_factory(engine)), signer)


@audit.command("verify")
def audit_verify(
    from_seq: Annotated[int, typer.Option(min=1, help="First record to check.")] = 1,
    to_seq: Annotated[int | None, typer.Option(min=1, help="Last record to check.")] = None,
    checkpoint: CheckpointFiles = None,
) -> None:
    """Verify the configured database's audit chain (DATABASE_URL), and against kept checkpoints.

    Exit status 0 when intact, 1 at the first broken link (printed with its sequence number).
    """
    import asyncio

    from app.service.checkpoints import InvalidCheckpoint
    from app.service.offline import read_checkpoints

    try:
        kept = [cp for path in checkpoint or [] for cp in read_checkpoints(path)]
        verification = asyncio.run(
            _audit_service().verify(from_seq=from_seq, to_seq=to_seq, checkpoints=kept)
        )
    except InvalidCheckpoint as error:
        typer.echo(f"checkpoint refused: {error}", err=True)
        raise typer.Exit(2) from None
    _report(verification)


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Print a signed checkpoint of the configured database's chain head (JSON), to keep elsewhere."""
    import asyncio

    checkpoint = asyncio.run(_audit_service().checkpoint())
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


def main() -> None:
    app()
