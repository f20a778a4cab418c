"""``il6 classifiers train``: fit a classifier version from a CSV cohort and write it as a draft.

A plain function with typer options, registered on the command line's ``classifiers`` group by app/cli.py.
It writes ``<out>/<name>/<version>/{manifest.json,model.skops}`` and prints the report and the line to add
to ``registry.json``; the version is a draft until someone who reviewed the report changes its status.
"""

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from app.domain.classifiers.base import ClassifierDefinitionError
from app.domain.errors import InvalidInput


def train(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Training cohort, CSV (columns: see app/ml/training_data.py).", dir_okay=False
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="Classifier name: lowercase letters, digits, '-'.")],
    version: Annotated[str, typer.Option("--version", help="Version, major.minor.patch.")],
    out: Annotated[
        Path,
        typer.Option("--out", help="Registry directory to write <name>/<version>/ into.", file_okay=False),
    ],
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Pin of the version whose assays and criterion are copied [default: the default one].",
        ),
    ] = None,
    created_by: Annotated[
        str | None, typer.Option("--created-by", help="Who trained it [default: $USER, else 'unknown'].")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the cross-validation and bootstrap.")] = 0,
    # app.ml.training.DEFAULT_REPEATS, written out: training is imported only when the command runs
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Repeats of the cross-validation.")] = 20,
) -> None:
    """Fit a classifier version from a CSV cohort and write it as a draft, with its report."""
    from app.domain.classifiers.registry import load_registry
    from app.ml.builders import BUILDERS
    from app.ml.training import (
        TrainingDataError,
        TrainingRefused,
        fit_version,
        read_training_csv,
        write_version,
    )
    from app.ml.training_report import format_report
    from app.settings import get_settings

    try:
        definition = load_registry(get_settings().classifier_dir, BUILDERS).resolve(base).definition
        cohort = read_training_csv(data.read_bytes(), definition)
        trained = fit_version(
            cohort,
            base=definition,
            name=name,
            version=version,
            created_by=created_by or os.environ.get("USER") or "unknown",
            seed=seed,
            now=datetime.now(UTC),
            repeats=repeats,
        )
        directory = out / name / version
        write_version(trained, directory)
    except (TrainingDataError, TrainingRefused, ClassifierDefinitionError, InvalidInput, OSError) as error:
        typer.echo(f"training refused: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(format_report(trained.report))
    typer.echo(f"wrote {directory}")
    typer.echo(f"digest {trained.digest}")
    typer.echo("register it (a draft until activated):")
    typer.echo(f"  il6 classifiers register {directory} --digest {trained.digest} --reason '...'")
