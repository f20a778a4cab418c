"""Fitting a classifier version of kind ``sklearn-logistic-il6`` and writing it as a draft.

Training (the model-version spec of the "classifier lifecycle" issue) fits the model of
``app.ml.model_version`` to a cohort read by ``app.ml.training_data``, reports cross-validated metrics with
their intervals and the sample-size warnings they call for, compiles the model to an IL6 cutoff, and
writes a manifest + skops artifact that the registry loads like any other version. It refuses, rather
than writes, a model in which higher IL6 does not mean higher risk (coefficient <= 0).

Cross-validation: repeated stratified k-fold, k = min(5, the smaller outcome count) so every validation
fold holds both outcomes however small the cohort; each fold's model tunes its threshold by an inner
stratified k-fold of the same rule. The final model is refit on every subject.
"""

import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import sklearn
import skops
from numpy.typing import NDArray
from sklearn.model_selection import RepeatedStratifiedKFold

from app.domain.classifiers import registry, rules
from app.domain.classifiers.base import ClassifierDefinition, ClassifierDefinitionError
from app.domain.classifiers.manifest import MANIFEST_SCHEMA, artifact_digest, manifest_digest, parse_manifest
from app.domain.il6 import PG_PER_ML
from app.ml import artifact as artifacts
from app.ml import metrics, model_version
from app.ml.metrics import Estimate
from app.ml.model_version import NEGATIVE, POSITIVE
from app.ml.training_data import CENSORING_RULE, TrainingData, TrainingDataError, read_training_csv

__all__ = [
    "TrainedVersion",
    "TrainingDataError",
    "TrainingRefused",
    "TrainingReport",
    "fit_version",
    "read_training_csv",
    "registry_entry",
    "write_version",
]

MAX_FOLDS = 5
DEFAULT_REPEATS = 20
EVENTS_PER_VARIABLE = 10
"""Outcomes per predictor often asked of logistic regression (Peduzzi P, Concato J, Kemper E, Holford TR,
Feinstein AR. J Clin Epidemiol 1996;49:1373-9); fewer triggers a warning, not a refusal."""
MANIFEST_FILE = "manifest.json"


class TrainingRefused(Exception):
    """Training ran but will not produce a version: the reason says why."""


@dataclass(frozen=True)
class TrainingReport:
    """What a person reviews before activating a version; ``training`` is the manifest's section."""

    ref: str
    cutoff_pg_per_ml: str
    coefficient: str
    training: Mapping[str, Any]


@dataclass(frozen=True)
class TrainedVersion:
    manifest: dict[str, Any]
    artifact: bytes
    report: TrainingReport

    @property
    def digest(self) -> str:
        return manifest_digest(self.manifest)


def _fit(x: NDArray[np.float64], y: NDArray[np.str_], seed: int) -> Any:
    inner_folds = min(MAX_FOLDS, *(int(np.count_nonzero(y == label)) for label in (POSITIVE, NEGATIVE)))
    try:
        return model_version.make_estimator(inner_folds, seed).fit(x, y)
    except ValueError as error:
        raise TrainingRefused(f"the model could not be fitted: {error}") from None


def _cross_validate(
    x: NDArray[np.float64], y: NDArray[np.str_], *, folds: int, repeats: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Out-of-fold P(progressive) and predicted-progressive, each repeats x subjects."""
    scores = np.full((repeats, len(y)), np.nan)
    predicted = np.zeros((repeats, len(y)), dtype=bool)
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    for index, (train, test) in enumerate(splitter.split(x, y)):
        model = _fit(x[train], y[train], seed)
        positive = list(model.classes_).index(POSITIVE)
        scores[index // folds, test] = model.predict_proba(x[test])[:, positive]
        predicted[index // folds, test] = model.predict(x[test]) == POSITIVE
    return scores, predicted


def _warnings(
    data: TrainingData, folds: int, auc: Estimate, rates: Mapping[str, Estimate], survival: Any
) -> list[str]:
    """Sample-size honesty: what the numbers can and cannot support, in words."""
    counts = data.outcome_counts()
    n, smaller = len(data.labelled), min(counts.values())
    spans = "; ".join(f"{name} {e.low:.2f} to {e.high:.2f}" for name, e in rates.items())
    found = [
        f"{n} subjects ({counts[NEGATIVE]} {NEGATIVE}, {counts[POSITIVE]} {POSITIVE}): the AUC 95% interval "
        f"spans {auc.low:.2f} to {auc.high:.2f}; {spans}."
    ]
    if smaller < EVENTS_PER_VARIABLE:
        found.append(
            f"The smaller outcome has {smaller} subjects, fewer than the {EVENTS_PER_VARIABLE} per predictor "
            "often asked of logistic regression (Peduzzi 1996): the coefficient and cutoff are unstable."
        )
    if folds < MAX_FOLDS:
        found.append(
            f"{folds}-fold cross-validation, not {MAX_FOLDS}: the smaller outcome has {smaller} subjects."
        )
    if auc.low <= 0.5:
        found.append(
            "The AUC interval includes 0.5: these data do not exclude a model that does not discriminate."
        )
    if auc.width == 0:
        found.append(
            "The bootstrap AUC interval has no width (the out-of-fold scores separate the outcomes in every "
            f"resample); it understates the uncertainty of {n} subjects."
        )
    if data.censored_n:
        found.append(f"{data.censored_n} of {n} results were censored and entered the fit at their bound.")
    if data.with_survival and survival is None:
        found.append("No log-rank test: one cutoff group is empty or no event was observed.")
    elif survival is not None:
        low, high = survival["groups"]["low"], survival["groups"]["high"]
        found.append(
            f"Log-rank groups come from the cutoff fitted on the same subjects (in-sample, so optimistic): "
            f"{low['events']} events among {low['n']} low, {high['events']} among {high['n']} high."
        )
    return found


def _source(data: TrainingData, ref: str) -> dict[str, str]:
    return {"citation": f"fitted by il6 classifiers train ({ref}) from training data {data.data_sha256}"}


def _base_parts(base: ClassifierDefinition) -> tuple[dict[str, Any], dict[str, Any]]:
    """The base version's eligibility criterion and specimen parameter, copied verbatim."""
    criteria = base.manifest.get("criteria", [])
    eligibility = next((c for c in criteria if isinstance(c, dict) and c.get("name") == "eligibility"), None)
    specimen = next((p for p in base.manifest.get("parameters", []) if p.get("name") == rules.SPECIMEN), None)
    if eligibility is None or specimen is None:
        raise ClassifierDefinitionError(f"{base.ref} has no eligibility criterion and specimen to copy")
    eligibility_copy, specimen_copy = json.loads(json.dumps([eligibility, specimen]))
    return eligibility_copy, specimen_copy


_DESCRIPTIONS = {
    model_version.MEAN: "Mean of ln(IL6 in pg/mL) over the training subjects (StandardScaler.mean_).",
    model_version.SCALE: "Standard deviation of ln(IL6 in pg/mL) over the subjects (StandardScaler.scale_).",
    model_version.COEFFICIENT: (
        "Logistic coefficient of standardised ln IL6 on the log-odds of progressive disease: "
        "LogisticRegression.coef_ negated, since scikit-learn gives it for 'stable'. Must be > 0."
    ),
    model_version.INTERCEPT: (
        "Logistic intercept for progressive disease: LogisticRegression.intercept_, negated."
    ),
    model_version.THRESHOLD: (
        "P(progressive) at or above which the model predicts progressive: TunedThresholdClassifierCV."
        "best_threshold_, maximising balanced accuracy."
    ),
}


def _manifest(
    data: TrainingData,
    base: ClassifierDefinition,
    *,
    ref: str,
    parameters: model_version.ModelParameters,
    cutoff: str,
    artifact: bytes,
    training: dict[str, Any],
    created_by: str,
    created_at: str,
) -> dict[str, Any]:
    name, version = ref.split("@")
    fitted = _source(data, ref)
    eligibility, specimen = _base_parts(base)
    key_sources = [
        *eligibility["sources"],
        {"citation": f"base version {base.ref}: assays and eligibility criterion"},
    ]
    risk = {
        "name": "risk",
        "statement": (
            f"Serum IL6 at or above {rules.CUTOFF} (the fitted logistic model compiled to a cutoff: the IL6 "
            "at which the model predicts progressive disease) -> high; below it -> low; a censored result "
            "allowing values on both sides -> no group."
        ),
        "sources": [fitted],
    }
    cutoff_parameter = {
        "name": rules.CUTOFF,
        "value": cutoff,
        "unit": PG_PER_ML,
        "description": (
            "High risk at or above this serum IL6 concentration: exp(mean + scale * (logit(threshold) - "
            "intercept) / coefficient), rounded to 15 significant digits."
        ),
        "sources": [fitted],
    }
    model_parameters = [
        {"name": key, "value": value, "description": _DESCRIPTIONS[key], "sources": [fitted]}
        for key, value in parameters.as_texts().items()
    ]
    manifest = {
        "manifest_schema": MANIFEST_SCHEMA,
        "name": name,
        "version": version,
        "kind": model_version.KIND,
        "title": "Serum IL6 enrichment criterion and a fitted IL6 risk model",
        "intended_use": (
            f"{base.intended_use} Risk group from a logistic model of serum IL6 fitted by 'il6 classifiers "
            "train' (see 'training'); served only once activated, after review (its history says when)."
        ),
        "criteria": [eligibility, risk],
        "parameters": [cutoff_parameter, specimen, *model_parameters],
        "assays": base.manifest["assays"],
        "limitations": [
            f"Fitted on {training['n']} subjects from training data {data.data_sha256}; not validated on "
            "independent data.",
            f"Censoring rule: {CENSORING_RULE}.",
            "Eligibility is the base version's criterion (undetectable serum IL6); the model sets risk only.",
            *training["warnings"],
        ],
        "sources": [*{s["citation"]: s for s in key_sources}.values(), fitted],
        "artifact": {
            "file": artifacts.FILE,
            "sha256": artifact_digest(artifact),
            "format": artifacts.FORMAT,
            "trusted_types": list(artifacts.artifact_types(artifact)),
        },
        "training": training,
        "software": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "skops": skops.__version__,
        },
        "created_by": created_by,
        "created_at": created_at,
    }
    normalised: dict[str, Any] = json.loads(
        json.dumps(manifest, allow_nan=False)
    )  # what is written is hashed
    return normalised


def fit_version(
    data: TrainingData,
    *,
    base: ClassifierDefinition,
    name: str,
    version: str,
    created_by: str,
    seed: int = 0,
    now: datetime,
    repeats: int = DEFAULT_REPEATS,
) -> TrainedVersion:
    """Fit, evaluate and compile a version; refuse one the registry would reject or the spec forbids."""
    ref = f"{name}@{version}"
    match = registry.PIN.fullmatch(ref)
    if match is None or match["version"] is None:
        raise TrainingRefused("name must be lowercase letters, digits and '-'; version must be x.y.z")
    if now.tzinfo is None or repeats < 1:
        raise ValueError("now must be timezone-aware and repeats at least 1")
    if data.base_ref != base.ref:
        raise TrainingRefused(f"the data were read against {data.base_ref}, not {base.ref}")
    x, y = data.features(), data.labels()
    counts = data.outcome_counts()
    folds = min(MAX_FOLDS, *counts.values())
    scores, predicted = _cross_validate(x, y, folds=folds, repeats=repeats, seed=seed)
    positive = y == POSITIVE
    auc = metrics.auc(scores, positive, seed=seed)
    rates = {
        "sensitivity": metrics.proportion(predicted[:, positive], int(np.count_nonzero(positive))),
        "specificity": metrics.proportion(~predicted[:, ~positive], int(np.count_nonzero(~positive))),
    }
    model = _fit(x, y, seed)
    try:
        parameters = model_version.model_parameters(model)
    except ClassifierDefinitionError as error:
        raise TrainingRefused(str(error)) from None
    if parameters.coefficient <= 0:
        raise TrainingRefused(
            "the fitted coefficient is <= 0: in these data higher IL6 does not go with progressive disease, "
            f"and a {model_version.KIND} version requires it to (spec)"
        )
    cutoff = model_version.cutoff_text(parameters.cutoff_pg_per_ml())
    model_version.prove_cutoff(model, parameters, Decimal(cutoff))
    survivors = data.with_survival
    survival = metrics.logrank(
        np.array([row.survival_months for row in survivors], dtype=np.float64),
        np.array([bool(row.event) for row in survivors], dtype=bool),
        np.array([row.pg_per_ml >= float(cutoff) for row in survivors], dtype=bool),
    )
    training = {
        "data_sha256": data.data_sha256,
        "n": len(y),
        "outcome_counts": counts,
        "censored_n": data.censored_n,
        "survival_only_n": len(data.rows) - len(y),
        "positive_label": POSITIVE,
        "censoring_rule": CENSORING_RULE,
        "cv": {"scheme": "repeated stratified k-fold", "folds": folds, "repeats": repeats, "seed": seed},
        "folds_rule": f"folds = min({MAX_FOLDS}, the smaller outcome count): each fold holds both outcomes",
        "threshold_selection": (
            "TunedThresholdClassifierCV: balanced accuracy over 100 candidate thresholds of P(progressive), "
            f"inner stratified k-fold (k = min({MAX_FOLDS}, the smaller outcome count of the data fitted), "
            "shuffled with the seed); the final model is refit on all subjects"
        ),
        "metrics": {"auc": auc.as_json(), **{key: value.as_json() for key, value in rates.items()}},
        "survival": survival,
        "il6_distribution": metrics.histogram(x[:, 0], y, (NEGATIVE, POSITIVE)),
        "warnings": _warnings(data, folds, auc, rates, survival),
    }
    artifact = artifacts.dumps(model)
    manifest = _manifest(
        data,
        base,
        ref=ref,
        parameters=parameters,
        cutoff=cutoff,
        artifact=artifact,
        training=training,
        created_by=created_by,
        created_at=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    model_version.build(parse_manifest(manifest), artifact)  # loads exactly as the registry will
    report = TrainingReport(ref, cutoff, repr(parameters.coefficient), manifest["training"])
    return TrainedVersion(manifest=manifest, artifact=artifact, report=report)


def write_version(trained: TrainedVersion, directory: Path) -> None:
    """Write ``manifest.json`` and the artifact into a version's directory; never overwrite a version."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path, artifact_path = directory / MANIFEST_FILE, directory / trained.manifest["artifact"]["file"]
    for path in (manifest_path, artifact_path):
        if path.exists():
            raise FileExistsError(f"{path} exists: a version, once written, is never replaced")
    text = json.dumps(trained.manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    manifest_path.write_text(text, encoding="utf-8")
    artifact_path.write_bytes(trained.artifact)


def registry_entry(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The entry to add to ``registry.json``: a fitted version enters as a draft, which is never served."""
    return {
        "name": str(manifest["name"]),
        "version": str(manifest["version"]),
        "status": "draft",
        "digest": manifest_digest(manifest),
    }
