"""The command line: migrations, the OpenAPI document, classifiers, the audit trail, keys, and a check of
the configuration."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli_audit import audit
from app.cli_classifiers import install as install_classifier_commands
from app.cli_config import config

if TYPE_CHECKING:
    from app.service.access import KeyInfo, KeyService

app = typer.Typer(no_args_is_help=True, help="IL6 eligibility service administration.")
db = typer.Typer(no_args_is_help=True, help="The audit store's schema.")
classifiers = typer.Typer(no_args_is_help=True, help="Classifier versions.")
app.add_typer(db, name="db")
app.add_typer(classifiers, name="classifiers")
app.add_typer(audit, name="audit")
keys = typer.Typer(no_args_is_help=True, help="API keys: create, list, expire, revoke.")
app.add_typer(keys, name="keys")
app.add_typer(config, name="config")


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
    from app.ml.builders import BUILDERS

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
