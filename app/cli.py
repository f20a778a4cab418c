"""The command line: migrations, the OpenAPI document, and classifier verification."""

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="IL6 eligibility service administration.")
db = typer.Typer(no_args_is_help=True, help="The audit store's schema.")
classifiers = typer.Typer(no_args_is_help=True, help="Classifier versions.")
app.add_typer(db, name="db")
app.add_typer(classifiers, name="classifiers")


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the configured database (DATABASE_URL) to the newest migration."""
    from app.store.migrations import upgrade

    upgrade()


def openapi_document() -> str:
    from pydantic import SecretStr

    from app.main import create_app
    from app.settings import Settings

    schema = create_app(Settings(database_url=SecretStr("sqlite:///:memory:"))).openapi()
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


def main() -> None:
    app()
