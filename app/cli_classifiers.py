"""``il6 classifiers ...``: register, activate, retire and shadow versions in the configured store, read a
classifier's history, and see what a candidate would change. Each change is recorded with the operating
system user as ``cli:<user>`` and the reason given."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from app.service.classifiers import ClassifierCatalog
    from app.service.impact import Agreement, ClassifierReports

T = TypeVar("T")

Reason = Annotated[str, typer.Option(help="Why, for the lifecycle's record.")]
Ref = Annotated[str, typer.Argument(help="The version, as name@major.minor.patch.")]


def _split(ref: str) -> tuple[str, str]:
    from app.domain.classifiers.registry import PIN

    match = PIN.fullmatch(ref)
    if match is None or match["version"] is None:
        typer.echo("refused: give the version as name@major.minor.patch", err=True)
        raise typer.Exit(2)
    return match["name"], match["version"]


def _run(work: Callable[["ClassifierCatalog", "ClassifierReports"], Awaitable[T]]) -> T:
    """Run ``work`` against the configured store, with the classifier versions read from it; refusals and
    an unreachable store end the command with a message and exit status 1, never a traceback."""
    from functools import partial

    from app.domain.classifiers.base import ClassifierDefinitionError
    from app.domain.classifiers.lifecycle import LifecycleRefused
    from app.domain.classifiers.registry import load_registry
    from app.ml.builders import BUILDERS
    from app.service.classifiers import ClassifierCatalog, UnknownVersion, VersionExists
    from app.service.impact import ClassifierReports
    from app.settings import get_settings
    from app.store.database import create_engine_for, create_session_factory
    from app.store.unit_of_work import StoreUnavailable, UnitOfWork

    async def main() -> T:
        settings = get_settings()
        engine = create_engine_for(settings)
        try:
            unit_of_work = partial(UnitOfWork, create_session_factory(engine))
            readers = partial(UnitOfWork, create_session_factory(engine, read_only=True))
            bundled = load_registry(settings.classifier_dir, BUILDERS)
            catalog = ClassifierCatalog(bundled, unit_of_work, BUILDERS, readers=readers)
            await catalog.add_bundled()
            await catalog.refresh()
            return await work(catalog, ClassifierReports(catalog, readers))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except (ClassifierDefinitionError, LifecycleRefused, UnknownVersion, VersionExists) as error:
        typer.echo(f"refused: {error}", err=True)
        raise typer.Exit(1) from None
    except StoreUnavailable as error:
        typer.echo(f"the store could not be used: {error}", err=True)
        raise typer.Exit(1) from None


def _operator() -> str:
    from app.cli import _operator as operator

    return operator()


def register_version(
    directory: Annotated[
        Path, typer.Argument(help="A version's directory: manifest.json and its artifact.", file_okay=False)
    ],
    digest: Annotated[
        str,
        typer.Option(help="The digest 'il6 classifiers train' printed: the version must still hash to it."),
    ],
    reason: Reason,
) -> None:
    """Verify a version exactly as the service will load it, and store it as a draft."""
    from app.domain.classifiers.base import ClassifierDefinitionError

    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        spec = manifest.get("artifact") if isinstance(manifest, dict) else None
        file = spec.get("file") if isinstance(spec, dict) else None
        if spec is not None and (not isinstance(file, str) or Path(file).name != file):
            raise ClassifierDefinitionError("'artifact.file' must name a file beside the manifest")
        artifact = None if file is None else (directory / file).read_bytes()
    except (OSError, ValueError, ClassifierDefinitionError) as error:
        typer.echo(f"refused: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(1) from None

    async def work(catalog: "ClassifierCatalog", _: "ClassifierReports") -> str:
        entry = await catalog.register(manifest, artifact, by=_operator(), reason=reason, digest=digest)
        return f"registered {entry.definition.ref} as a draft  {entry.digest}"

    typer.echo(_run(work))


def _change(ref: str, event: str, reason: str) -> None:
    from app.domain.classifiers.lifecycle import LifecycleEvent

    name, version = _split(ref)

    async def work(catalog: "ClassifierCatalog", _: "ClassifierReports") -> list[str]:
        events = await catalog.change(name, version, LifecycleEvent(event), by=_operator(), reason=reason)
        return [f"{e.at.isoformat()}  {name}@{e.version}  {e.event.value}  ({e.reason})" for e in events]

    for line in _run(work):
        typer.echo(line)


def activate(ref: Ref, reason: Reason) -> None:
    """Make a version the one that decides requests pinning none (the active one before it retires)."""
    _change(ref, "activated", reason)


def retire(ref: Ref, reason: Reason) -> None:
    """Stop serving a version to requests that do not pin it."""
    _change(ref, "retired", reason)


def shadow(
    ref: Ref,
    reason: Reason,
    stop: Annotated[bool, typer.Option("--stop", help="Stop shadowing instead of starting.")] = False,
) -> None:
    """Decide with a candidate beside the active version on live requests (stored, never answered)."""
    _change(ref, "shadow-stopped" if stop else "shadow-started", reason)


def history(
    name: Annotated[str, typer.Argument(help="The classifier's name.")],
    at: Annotated[datetime | None, typer.Option(help="A moment (ISO 8601 with offset).")] = None,
) -> None:
    """Print a classifier's lifecycle: every change, and the version active at --at."""

    async def work(catalog: "ClassifierCatalog", _: "ClassifierReports") -> list[str]:
        lifecycle = await catalog.lifecycle(name)
        if lifecycle is None:
            return []
        lines = [
            f"{e.at.isoformat()}  {e.version:10}  {e.event.value:14}  {e.by}  ({e.reason})"
            for e in lifecycle.events
        ]
        if at is not None:
            if at.tzinfo is None:
                typer.echo("refused: --at needs a UTC offset", err=True)
                raise typer.Exit(2)
            lines.append(f"active at {at.isoformat()}: {lifecycle.active_at(at) or 'none'}")
        return lines

    lines = _run(work)
    if not lines:
        typer.echo(f"no classifier named {name}", err=True)
        raise typer.Exit(1)
    for line in lines:
        typer.echo(line)


def _table(title: str, agreement: "Agreement") -> list[str]:
    from app.service.impact import tables

    lines = [
        f"{title}: {agreement.changed} of {agreement.total} would change",
        "  recorded -> candidate: count",
    ]
    lines += [
        f"  {recorded:13} -> {candidate:13}: {count}" for recorded, candidate, count in tables(agreement)
    ]
    return lines


def impact(
    ref: Ref,
    from_seq: Annotated[int, typer.Option(min=1, help="First audit sequence number.")] = 1,
    to_seq: Annotated[int | None, typer.Option(min=1, help="Last one (inclusive).")] = None,
    include_superseded: Annotated[bool, typer.Option(help="Also replay corrected decisions.")] = False,
) -> None:
    """Replay recorded decisions under a candidate version and count what would change (records nothing)."""
    from app.service import impact as impact_analysis

    name, version = _split(ref)
    scope = impact_analysis.Scope(from_seq=from_seq, to_seq=to_seq, include_superseded=include_superseded)

    async def work(_: "ClassifierCatalog", reports: "ClassifierReports") -> list[str]:
        report = await reports.impact(name, version, scope)
        lines = [
            f"candidate {report.candidate.definition.ref}  {report.candidate.digest}",
            f"replayed {report.decisions} decisions (seq {report.first_seq}..{report.last_seq}) of "
            f"{len(report.subjects)} subjects; {len(report.subjects_changed)} subjects would change; "
            f"{report.pinned} decisions pinned a version and are left out",
            *_table("eligibility", report.eligibility),
            *_table("risk group", report.risk_group),
        ]
        lines += [f"not decidable ({count}): {why}" for why, count in sorted(report.undecidable.items())]
        return lines

    for line in _run(work):
        typer.echo(line)


def shadow_report(
    ref: Ref,
    against: Annotated[
        str | None,
        typer.Option(help="The answering version (x.y.z) to compare with; default the active one."),
    ] = None,
) -> None:
    """Compare a shadow version's outputs with what one version answered on the same live requests."""
    name, version = _split(ref)

    async def work(_: "ClassifierCatalog", reports: "ClassifierReports") -> list[str]:
        report = await reports.shadow(name, version, against)
        return [
            f"shadow {report.candidate.definition.ref}  {report.candidate.digest}  against {report.against}",
            *_table("eligibility", report.eligibility),
            *_table("risk group", report.risk_group),
            f"not decidable: {report.undecidable}",
        ]

    for line in _run(work):
        typer.echo(line)


def install(classifiers: typer.Typer) -> None:
    """Add these commands (and training) to the ``classifiers`` command group."""
    from app.cli_train import train

    classifiers.command("train")(train)
    classifiers.command("register")(register_version)
    classifiers.command("activate")(activate)
    classifiers.command("retire")(retire)
    classifiers.command("shadow")(shadow)
    classifiers.command("history")(history)
    classifiers.command("impact")(impact)
    classifiers.command("shadow-report")(shadow_report)
