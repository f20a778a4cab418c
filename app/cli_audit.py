"""``il6 audit``: verify the audit chain in the database or in an export, sign its head, make the signing key.

Exit statuses: 0 intact (or signed), 1 a broken link (or a chain that no longer extends the last
checkpoint: nothing signed), 2 an input refused (a checkpoint, an export), 3 the chain could not be read.
"""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from app.cli_verify import RangesInProcesses
    from app.domain.audit import Verification
    from app.service.audit import AuditService

audit = typer.Typer(no_args_is_help=True, help="The audit trail: verify it, sign checkpoints, check exports.")

CheckpointFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--checkpoint",
        help="A checkpoint kept earlier (JSON), or a checkpoint log (one per line); repeatable.",
        exists=True,
        dir_okay=False,
    ),
]


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


def _audit_service(
    ranges: "RangesInProcesses | None" = None, jobs: int = 1, *, signing: bool = False
) -> "AuditService":
    """The audit service on the configured database; with ``ranges``, a long check's ``jobs`` ranges are
    checked by it (PostgreSQL only: on SQLite a check is one pass). ``signing``: as the service does, it
    signs a head only when the chain extends the last checkpoint in the configured checkpoint log (read
    only then: a check does not depend on that log being readable)."""
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
    anchor = last_signed(settings.checkpoint_file, signer) if signing else None
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
        checkpoint = asyncio.run(_audit_service(signing=True).checkpoint())
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
    to_seq: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="The last seq the export was asked for (its to_seq): checkpoints beyond it are not "
            "compared, where without it they show a cut tail.",
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
        kept = [cp for cp in kept if to_seq is None or cp.seq <= to_seq]
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
