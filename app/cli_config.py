"""``il6 config check``: read the settings from the environment as the service does, before it starts,
and name every variable that is wrong (never its value)."""

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from app.settings import Settings

config = typer.Typer(no_args_is_help=True, help="The configuration: check it before the service starts.")


def env_name(field: str) -> str:
    """The environment variable a setting is read from."""
    return "DATABASE_URL" if field == "database_url" else f"IL6_{field.upper()}"


def _where(loc: tuple[int | str, ...]) -> str:
    """A validation error's place: the variable, and the key inside its JSON (``IL6_REDCAP_FIELDS.value``)."""
    if not loc:
        return "settings"  # a check across several variables: its message names them
    first = str(loc[0])
    return ".".join([first if first.isupper() else env_name(first), *map(str, loc[1:])])


def _configuration_errors() -> tuple["Settings | None", list[str]]:
    """The settings as the service would read them from the environment, or every error, by variable.

    Only messages are reported, never the values given (a value can be a password or a token)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError
    from sqlalchemy.exc import ArgumentError

    from app.settings import Settings
    from app.store.database import database_urls

    try:
        settings = Settings()
        database_urls(settings.database_url.get_secret_value())
    except ValidationError as error:
        return None, [f"{_where(item['loc'])}: {item['msg']}" for item in error.errors(include_input=False)]
    except SettingsError as error:  # a value that is not the JSON its setting takes
        field = re.search(r'field "(\w+)"', str(error))
        return None, [f"{env_name(field.group(1)) if field else 'settings'}: not valid JSON"]
    except ArgumentError:
        return None, ["DATABASE_URL: not a database URL"]
    except ValueError as error:  # from database_urls: a backend the service does not run on
        return None, [str(error)]
    return settings, []


def _summary(settings: "Settings") -> list[str]:
    from sqlalchemy import URL, make_url

    url = make_url(settings.database_url.get_secret_value())
    # Made anew from its parts: no password, and no query (which may carry one too).
    bare = URL.create(url.drivername, url.username, None, url.host, url.port, url.database)
    database = bare.render_as_string(hide_password=False)
    if not settings.is_sqlite and settings.database_role:
        database += f", acting as role {settings.database_role}"
    redcap = "off"
    if settings.redcap_api_url is not None:
        written = "writes back" if settings.redcap_write_back is not None else "writes nothing back"
        redcap = f"on (project {settings.redcap_project_id}, {written})"
    checkpoints = "off"
    if settings.checkpoint_interval_s > 0:
        checkpoints = (
            f"every {settings.checkpoint_interval_s:g} s, to {settings.checkpoint_file or 'the log'}"
        )
    oidc = "off" if settings.oidc_issuer is None else f"on (issuer {settings.oidc_issuer})"
    return [
        f"environment:  {settings.environment.value}",
        f"database:     {database} (password not shown)",
        f"classifiers:  {settings.classifier_dir or 'bundled'}",
        f"logs:         {settings.log_level}, {settings.log_format}",
        f"OIDC tokens:  {oidc}",
        f"REDCap:       {redcap}",
        f"CORS:         {len(settings.cors_allow_origins) or 'no'} origin(s)",
        f"metrics:      {'public' if settings.metrics_public else 'read scope'}",
        f"checkpoints:  {checkpoints}",
        f"rate limit:   {settings.rate_limit_per_minute or 'none'} per caller per minute",
    ]


def _database_problem(settings: "Settings") -> str | None:
    """Why the service could not decide on this database (unreachable, not migrated), or None."""
    import asyncio

    from app.main import refuse_a_login_that_can_alter_the_audit_trail
    from app.service.readiness import ReadinessProbe
    from app.settings import Environment
    from app.store.database import create_engine_for, database_urls
    from app.store.migrations import head_revisions

    url, _ = database_urls(settings.database_url.get_secret_value())
    on_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if on_file and not Path(str(url.database)).is_file():  # connecting would create an empty one
        return "The database file does not exist (il6 db upgrade creates it)."

    async def probe() -> str | None:
        engine = create_engine_for(settings)
        try:
            problem = await ReadinessProbe(engine, head_revisions()).problem()
            if problem is None and settings.environment is Environment.PRODUCTION:
                try:
                    await refuse_a_login_that_can_alter_the_audit_trail(engine)
                except RuntimeError as refused:
                    return str(refused)
            return problem
        finally:
            await engine.dispose()

    return asyncio.run(probe())


def _start_up_refusals(settings: "Settings") -> list[str]:
    """What else start-up checks before it serves, beyond the settings' own values: the audit signing key
    (production never creates one) and the classifier versions shipped with it."""
    from app.domain.classifiers.base import ClassifierDefinitionError
    from app.domain.classifiers.registry import load_registry
    from app.ml.builders import BUILDERS
    from app.service.checkpoints import SigningKeyMissing, load_signing_key
    from app.settings import Environment

    refusals = []
    if settings.environment is Environment.PRODUCTION:
        try:
            load_signing_key(settings.signing_key_file, create=False)
        except (SigningKeyMissing, OSError, ValueError) as error:
            refusals.append(f"IL6_SIGNING_KEY_FILE: {type(error).__name__}: {error}")
        checkpoints = settings.checkpoint_file
        if checkpoints is not None and not os.access(checkpoints.parent, os.W_OK):
            refusals.append("IL6_CHECKPOINT_FILE: its directory is not writable")
    try:
        registry = load_registry(settings.classifier_dir, BUILDERS)
    except (ClassifierDefinitionError, OSError, ValueError, KeyError) as error:
        refusals.append(f"IL6_CLASSIFIER_DIR: {type(error).__name__}: {error}")
    else:
        for rejected in registry.rejected:  # served without it, as start-up does; said, not refused
            typer.echo(f"warning: {rejected.name}@{rejected.version} would not be served: {rejected.reason}")
    return refusals


@config.command("check")
def config_check(
    connect: Annotated[
        bool,
        typer.Option("--connect", help="Also check the database is reachable and at the newest migration."),
    ] = False,
) -> None:
    """Read the settings from the environment as the service does; report every error (exit status 1) or
    a summary (0). Values are never printed: a password or a token stays out of the output."""
    settings, errors = _configuration_errors()
    if settings is None:
        typer.echo(f"configuration refused ({len(errors)} error(s)):", err=True)
        for error in errors:
            typer.echo(f"  {error}", err=True)
        raise typer.Exit(1)
    refusals = _start_up_refusals(settings)
    if refusals:
        typer.echo(f"start-up would be refused ({len(refusals)} reason(s)):", err=True)
        for refusal in refusals:
            typer.echo(f"  {refusal}", err=True)
        raise typer.Exit(1)
    typer.echo("configuration ok")
    for line in _summary(settings):
        typer.echo(f"  {line}")
    if connect:
        problem = _database_problem(settings)
        if problem is not None:
            typer.echo(f"database refused: {problem}", err=True)
            raise typer.Exit(1)
        typer.echo("  database reachable, at the newest migration")
