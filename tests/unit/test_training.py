"""Training a sklearn-logistic-il6 version from a CSV cohort: reading, refusing, metrics and the report.

All cohorts are synthetic (tests/ml_factories.py); nothing fitted here is a clinical model.
"""

import inspect
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import typer
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from app.cli_train import train
from app.domain.classifiers.manifest import manifest_digest
from app.domain.classifiers.registry import load_registry
from app.domain.il6 import Comparator
from app.ml import artifact as artifacts
from app.ml import metrics
from app.ml.model_version import KIND
from app.ml.training import (
    DEFAULT_REPEATS,
    TrainedVersion,
    TrainingDataError,
    TrainingRefused,
    fit_version,
    read_training_csv,
    registry_entry,
    write_version,
)
from app.ml.training_data import CENSORING_RULE
from app.ml.training_report import format_report
from tests.ml_factories import HEADER, cohort_rows, synthetic_cohort, to_csv

BASE = load_registry().resolve(None).definition
NOW = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
REPEATS = 2
"""Few repeats keep the tests fast; the cross-validation code is the same at any count."""


def fit(data: bytes, *, name: str = "il6-logistic", version: str = "0.1.0", seed: int = 0) -> TrainedVersion:
    cohort = read_training_csv(data, BASE)
    return fit_version(
        cohort,
        base=BASE,
        name=name,
        version=version,
        created_by="tester",
        seed=seed,
        now=NOW,
        repeats=REPEATS,
    )


@pytest.fixture(scope="module")
def thirteen() -> TrainedVersion:
    """Thirteen subjects, the size of the source study's evaluable cohort (here synthetic)."""
    return fit(synthetic_cohort(13))


def row(**changes: str) -> dict[str, str]:
    base = {"subject_id": "", "il6": "12.3", "unit": "pg/mL", "assay": "elecsys-il6", "outcome": "stable"}
    return {**base, "survival_months": "", "event": "", **changes}


# Reading ----------------------------------------------------------------------------------------------------


def test_results_are_normalised_to_pg_per_ml_with_the_censoring_rule() -> None:
    rows = [
        row(il6="<1.5"),
        row(il6="0.0123", unit="ng/mL"),
        row(il6="12.3", unit="ng/L"),
        row(il6=">5000", outcome="progressive"),
        row(il6="<0.0015", unit="ng/mL", outcome="progressive"),
        row(il6=">=40", outcome="progressive"),
    ]
    data = read_training_csv(to_csv(rows), BASE)

    assert [(r.pg_per_ml, r.comparator) for r in data.rows] == [
        (1.5, Comparator.LT),
        (12.3, None),
        (12.3, None),
        (5000.0, Comparator.GT),
        (1.5, Comparator.LT),
        (40.0, Comparator.GE),
    ]
    assert data.censored_n == 4
    assert data.outcome_counts() == {"stable": 3, "progressive": 3}
    assert data.base_ref == BASE.ref
    assert "'<x' enters the fit at x" in CENSORING_RULE
    assert "'>x' enters at x, its lower bound" in CENSORING_RULE


def test_a_subject_without_outcome_enters_only_the_survival_analysis() -> None:
    rows = [*cohort_rows(8), row(outcome="", survival_months="3.5", event="1")]
    data = read_training_csv(to_csv(rows), BASE)

    assert len(data.rows) == 9
    assert len(data.labelled) == 8
    assert data.rows[-1].outcome is None
    assert data.rows[-1].survival_months == 3.5
    assert data.rows[-1].event is True


SECRET = "987654321"
"""Appears in bad cells so the tests can show that no error message repeats a submitted value."""


@pytest.mark.parametrize(
    ("changes", "column"),
    [
        pytest.param({"il6": f"x{SECRET}"}, "il6", id="il6-not-a-number"),
        pytest.param({"il6": f"-{SECRET}"}, "il6", id="il6-negative"),
        pytest.param({"il6": "0"}, "il6", id="il6-zero-has-no-log"),
        pytest.param({"il6": "<0"}, "il6", id="il6-below-zero"),
        pytest.param({"il6": "NaN"}, "il6", id="il6-not-finite"),
        pytest.param({"il6": ""}, "il6", id="il6-empty"),
        pytest.param({"unit": f"mg{SECRET}"}, "unit", id="unit-unknown"),
        pytest.param({"assay": f"kit-{SECRET}"}, "assay", id="assay-not-in-base"),
        pytest.param({"outcome": f"responded{SECRET}"}, "outcome", id="outcome-unknown"),
        pytest.param({"outcome": ""}, "outcome", id="outcome-empty-without-survival"),
        pytest.param(
            {"survival_months": f"-{SECRET}", "event": "1"}, "survival_months", id="months-negative"
        ),
        pytest.param({"survival_months": "", "event": "1"}, "survival_months", id="months-missing"),
        pytest.param({"survival_months": "4", "event": SECRET}, "event", id="event-not-0-or-1"),
    ],
)
def test_a_bad_row_is_refused_by_row_and_column_without_its_value(
    changes: dict[str, str], column: str
) -> None:
    rows = [*cohort_rows(8), row(**changes)]
    with pytest.raises(TrainingDataError) as caught:
        read_training_csv(to_csv(rows), BASE)

    assert (caught.value.row, caught.value.column) == (10, column)  # header is row 1, the 9th subject row 10
    assert str(caught.value).startswith(f"row 10, column {column}: ")
    assert SECRET not in str(caught.value)


def test_a_repeated_subject_is_refused_without_naming_it() -> None:
    rows = [*cohort_rows(8), row(subject_id="SYN-0-003")]
    with pytest.raises(TrainingDataError, match="row 10, column subject_id") as caught:
        read_training_csv(to_csv(rows), BASE)
    assert "SYN-0-003" not in str(caught.value)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        pytest.param(("il6", "unit", "assay"), "column outcome: required column is missing", id="no-outcome"),
        pytest.param((*HEADER, "notes"), "unknown column", id="unknown-column"),
        pytest.param(
            ("il6", "unit", "assay", "outcome", "event"), "column survival_months", id="event-alone"
        ),
    ],
)
def test_a_bad_header_is_refused(header: tuple[str, ...], message: str) -> None:
    with pytest.raises(TrainingDataError, match=message) as caught:
        read_training_csv(to_csv(cohort_rows(8), header), BASE)
    assert caught.value.row == 1


def test_a_file_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(TrainingDataError, match="not UTF-8"):
        read_training_csv(b"il6,unit\n\xff\xfe\n", BASE)


def test_too_few_subjects_of_an_outcome_are_refused() -> None:
    rows = [row(outcome="stable") for _ in range(6)] + [row(outcome="progressive") for _ in range(2)]
    with pytest.raises(
        TrainingDataError, match="at least 3 subjects of each outcome; found stable 6, progressive 2"
    ):
        read_training_csv(to_csv(rows), BASE)


# Fitting ----------------------------------------------------------------------------------------------------


def test_a_thirteen_subject_cohort_fits_with_intervals_and_sample_size_warnings(
    thirteen: TrainedVersion,
) -> None:
    training = thirteen.manifest["training"]

    assert training["n"] == 13
    assert training["outcome_counts"] == {"stable": 7, "progressive": 6}
    assert training["cv"] == {
        "scheme": "repeated stratified k-fold",
        "folds": 5,
        "repeats": REPEATS,
        "seed": 0,
    }
    for name in ("auc", "sensitivity", "specificity"):
        metric = training["metrics"][name]
        low, high = metric["ci95"]
        assert 0 <= low <= metric["estimate"] <= high <= 1, name
        assert metric["method"]
    assert "bootstrap" in training["metrics"]["auc"]["method"]
    assert "Wilson" in training["metrics"]["sensitivity"]["method"]
    warnings = training["warnings"]
    low, high = training["metrics"]["auc"]["ci95"]
    assert warnings[0].startswith(
        f"13 subjects (7 stable, 6 progressive): the AUC 95% interval spans {low:.2f}"
    )
    assert any("fewer than the 10 per predictor" in warning for warning in warnings)
    assert set(warnings) <= set(thirteen.manifest["limitations"])


def test_the_fitted_coefficient_is_positive_and_the_manifest_complete(thirteen: TrainedVersion) -> None:
    manifest = thirteen.manifest
    parameters = {p["name"]: p for p in manifest["parameters"]}

    assert manifest["kind"] == KIND
    assert float(parameters["model.coefficient"]["value"]) > 0
    assert parameters["risk.cutoff_pg_per_ml"]["unit"] == "pg/mL"
    assert parameters["eligibility.specimen"]["value"] == "serum"
    assert all(p["sources"] and p["description"] for p in manifest["parameters"])
    assert manifest["assays"] == BASE.manifest["assays"]
    assert manifest["criteria"][0] == BASE.manifest["criteria"][0]
    assert manifest["created_at"] == "2026-12-02T05:00:00Z"
    assert manifest["created_by"] == "tester"
    assert set(manifest["software"]) == {"python", "scikit-learn", "numpy", "scipy", "skops"}
    assert manifest["artifact"]["trusted_types"] == list(artifacts.artifact_types(thirteen.artifact))
    assert manifest["training"]["censoring_rule"] == CENSORING_RULE
    assert "SYN-" not in json.dumps(manifest), "subject ids never reach the manifest"


def test_survival_gives_a_log_rank_test_between_the_cutoff_groups(thirteen: TrainedVersion) -> None:
    survival = thirteen.manifest["training"]["survival"]

    assert survival["test"] == "log-rank"
    assert survival["chi_square"] == pytest.approx(survival["statistic"] ** 2)
    assert 0 <= survival["p_value"] <= 1
    assert survival["groups"]["low"]["n"] + survival["groups"]["high"]["n"] == 13
    assert any("in-sample" in warning for warning in thirteen.manifest["training"]["warnings"])


def test_without_survival_there_is_no_log_rank_test() -> None:
    trained = fit(synthetic_cohort(12, seed=3, with_survival=False))

    assert trained.manifest["training"]["survival"] is None
    assert "log-rank: not run" in format_report(trained.report)


def test_the_histogram_counts_every_subject_on_a_log10_axis(thirteen: TrainedVersion) -> None:
    histogram = thirteen.manifest["training"]["il6_distribution"]

    assert histogram["axis"] == "log10 pg/mL"
    assert np.allclose(np.diff(histogram["edges"]), metrics.HISTOGRAM_BIN_LOG10)
    assert {k: sum(v) for k, v in histogram["counts"].items()} == {"stable": 7, "progressive": 6}


def test_a_cohort_where_higher_il6_means_stable_disease_is_refused() -> None:
    with pytest.raises(TrainingRefused, match="coefficient is <= 0"):
        fit(synthetic_cohort(20, inverted=True))


def test_perfect_separation_warns_that_its_interval_has_no_width() -> None:
    rows = [row(il6=str(v), outcome="stable") for v in (2, 3, 4, 5)]
    rows += [row(il6=str(v), outcome="progressive") for v in (200, 300, 400, 500)]
    training = fit(to_csv(rows)).manifest["training"]

    assert training["metrics"]["auc"]["ci95"] == [1.0, 1.0]
    assert any("no width" in warning for warning in training["warnings"])
    assert any(warning.startswith("4-fold cross-validation, not 5") for warning in training["warnings"])


def test_the_smallest_accepted_cohort_fits_with_three_folds() -> None:
    """Three subjects of each outcome: outer folds = 3, so each fold's training part keeps two of each and
    the inner threshold tuning runs with two folds; nothing warns or fails for want of subjects."""
    rows = [row(il6=v, outcome="stable") for v in ("<1.5", "4", "30")]
    rows += [row(il6=v, outcome="progressive") for v in ("8", "60", "300")]
    training = fit(to_csv(rows)).manifest["training"]

    assert training["cv"]["folds"] == 3
    assert training["warnings"][0].startswith("6 subjects (3 stable, 3 progressive)")
    assert any(warning.startswith("3-fold cross-validation, not 5") for warning in training["warnings"])


@pytest.mark.parametrize(("name", "version"), [("IL6", "1.0.0"), ("il6-logistic", "1.0"), ("a b", "1.0.0")])
def test_names_and_versions_must_be_pinnable(name: str, version: str) -> None:
    cohort = read_training_csv(synthetic_cohort(8), BASE)
    with pytest.raises(TrainingRefused, match=r"version must be x\.y\.z"):
        fit_version(cohort, base=BASE, name=name, version=version, created_by="t", now=NOW, repeats=1)


# Statistics -------------------------------------------------------------------------------------------------


def test_wilson_interval_matches_published_values() -> None:
    """Newcombe RG, Stat Med 1998;17:857-72, table I: 0/10 -> 0 to 0.2775; 5/10 -> 0.2366 to 0.7634."""
    assert metrics.wilson_interval(0.0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert metrics.wilson_interval(0.5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_auc_estimate_is_scikit_learns_and_its_interval_reproducible() -> None:
    rng = np.random.default_rng(7)
    positive = np.array([True] * 6 + [False] * 7)
    scores = rng.random((3, 13))

    estimate = metrics.auc(scores, positive, seed=1)

    expected = np.mean([roc_auc_score(positive, repeat) for repeat in scores])
    assert estimate.estimate == pytest.approx(expected)
    assert estimate == metrics.auc(scores, positive, seed=1)
    assert estimate.low <= estimate.estimate <= estimate.high


# Writing and reporting --------------------------------------------------------------------------------------


def test_write_version_writes_manifest_and_artifact_once(thirteen: TrainedVersion, tmp_path: Path) -> None:
    write_version(thirteen, tmp_path / "v")

    manifest = json.loads((tmp_path / "v" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest_digest(manifest) == thirteen.digest
    assert (tmp_path / "v" / "model.skops").read_bytes() == thirteen.artifact
    with pytest.raises(FileExistsError):
        write_version(thirteen, tmp_path / "v")


def test_registry_entry_is_a_draft_pinned_by_digest(thirteen: TrainedVersion) -> None:
    assert registry_entry(thirteen.manifest) == {
        "name": "il6-logistic",
        "version": "0.1.0",
        "status": "draft",
        "digest": manifest_digest(thirteen.manifest),
    }


def test_the_report_names_n_metrics_intervals_log_rank_and_warnings(thirteen: TrainedVersion) -> None:
    report = format_report(thirteen.report)

    assert "il6-logistic@0.1.0: fitted on 13 subjects (stable 7, progressive 6)" in report
    for name in ("auc", "sensitivity", "specificity"):
        assert name in report
    assert report.count("95% CI") == 3
    assert "log-rank: chi-square" in report
    assert f"compiled cutoff: {thirteen.report.cutoff_pg_per_ml} pg/mL" in report
    assert thirteen.manifest["training"]["warnings"][0] in report


# The command ------------------------------------------------------------------------------------------------

cli = typer.Typer()
cli.command()(train)
runner = CliRunner()


def test_the_train_command_writes_a_draft_and_prints_report_and_digest(tmp_path: Path) -> None:
    data = tmp_path / "cohort.csv"
    data.write_bytes(synthetic_cohort(13))
    args = [
        "--data",
        str(data),
        "--name",
        "il6-logistic",
        "--version",
        "0.2.0",
        "--out",
        str(tmp_path / "out"),
    ]

    result = runner.invoke(cli, [*args, "--created-by", "tester", "--repeats", str(REPEATS)])

    assert result.exit_code == 0, result.output
    version_dir = tmp_path / "out" / "il6-logistic" / "0.2.0"
    manifest = json.loads((version_dir / "manifest.json").read_text(encoding="utf-8"))
    assert (version_dir / "model.skops").is_file()
    assert manifest["created_by"] == "tester"
    assert f"digest {manifest_digest(manifest)}" in result.stdout
    assert f"il6 classifiers register {version_dir} --digest {manifest_digest(manifest)}" in result.stdout
    assert "fitted on 13 subjects" in result.stdout


def test_the_train_command_refuses_bad_data_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    data = tmp_path / "cohort.csv"
    data.write_bytes(to_csv([*cohort_rows(8), row(unit="mg/dL")]))
    args = ["--data", str(data), "--name", "il6-logistic", "--version", "0.2.0", "--out", str(tmp_path)]

    result = runner.invoke(cli, args)

    assert result.exit_code == 1
    assert "training refused: row 10, column unit" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "il6-logistic").exists()


def test_the_commands_default_repeats_are_trainings() -> None:
    assert inspect.signature(train).parameters["repeats"].default == DEFAULT_REPEATS
