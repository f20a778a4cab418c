"""Classifier versions of kind ``sklearn-logistic-il6``: a fitted logistic model compiled to an IL6 cutoff.

The model (the model-version spec of the "classifier lifecycle" issue) is a scikit-learn Pipeline
[FunctionTransformer(np.log) -> StandardScaler -> LogisticRegression] over one feature, serum IL6 in pg/mL,
wrapped in TunedThresholdClassifierCV (balanced accuracy, positive label "progressive": scikit-learn 1.9
takes the positive label from the tuning scorer's ``pos_label``, hence ``balanced_accuracy`` below). It is
monotone in IL6, so it is equivalent to one cutoff: with z = (ln x - mean) / scale and p = logistic(w z + b),
the prediction "progressive" (p >= t) holds exactly when x >= c = exp(mean + scale (logit(t) - b) / w), w > 0.

When a version loads, ``build`` reads the skops artifact, recomputes mean, scale, w, b, t and c, requires
them to equal the manifest's parameters, proves the equivalence on a grid, and returns the rule-set
classifier with that cutoff: decisions never call scikit-learn, and censored results are placed exactly as
for a rule set (``app.domain.risk.assess_risk``, ``app.domain.eligibility.assess_eligibility``).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import sklearn
from numpy.typing import ArrayLike
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer
from sklearn.model_selection import StratifiedKFold, TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from app.domain.classifiers import rules
from app.domain.classifiers.base import Classifier, ClassifierDefinition, ClassifierDefinitionError
from app.domain.decimals import BINARY64_DIGITS, plain
from app.ml import artifact as artifacts
from app.ml.builders import MODEL_KIND

KIND = MODEL_KIND
POSITIVE = "progressive"
NEGATIVE = "stable"
CLASSES = (POSITIVE, NEGATIVE)
"""The labels as scikit-learn orders them (sorted): LogisticRegression's coefficient is for NEGATIVE."""

MEAN = "model.log_il6_mean"
SCALE = "model.log_il6_scale"
COEFFICIENT = "model.coefficient"
INTERCEPT = "model.intercept"
THRESHOLD = "model.threshold"

GRID_PG_PER_ML = np.logspace(-2, 5, 2001)
"""The proof grid, 0.01 to 100,000 pg/mL, log-spaced (spec: >= 2000 points over 0.01..1e5)."""
PROBABILITY_TOLERANCE = 1e-12
"""Largest difference allowed between scikit-learn's probability and the hand-computed logistic (spec)."""
CUTOFF_BAND = 1e-9
"""Grid points this close to the cutoff (relative) are not held to the cutoff rule: float rounding (spec)."""


def balanced_accuracy(y_true: ArrayLike, y_pred: ArrayLike, *, pos_label: str) -> float:
    """Mean of sensitivity and specificity for two labels: scikit-learn's ``balanced_accuracy_score``.

    Named in the tuning scorer because ``TunedThresholdClassifierCV`` learns the positive label from its
    scorer's ``pos_label``, which ``balanced_accuracy_score`` does not take; and computed directly because
    the tuner calls it for each of its 100 candidate thresholds in every fold.
    """
    truth = np.asarray(y_true) == pos_label
    predicted = np.asarray(y_pred) == pos_label
    if truth.all() or not truth.any():
        raise ValueError("balanced accuracy needs both outcomes among the true labels")
    sensitivity = float(np.mean(predicted[truth]))
    specificity = float(np.mean(~predicted[~truth]))
    return (sensitivity + specificity) / 2


def make_estimator(inner_folds: int, seed: int) -> Any:
    """The unfitted model of this kind: the pipeline whose threshold is tuned by stratified k-fold CV."""
    pipeline = Pipeline(
        [
            ("log", FunctionTransformer(np.log)),
            ("scale", StandardScaler()),
            ("logistic", LogisticRegression()),
        ]
    )
    return TunedThresholdClassifierCV(
        pipeline,
        scoring=make_scorer(balanced_accuracy, pos_label=POSITIVE),
        response_method="predict_proba",
        cv=StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed),
    )


@dataclass(frozen=True)
class ModelParameters:
    """The fitted numbers, as floats: w and b are for the positive label (the negated sklearn values)."""

    log_il6_mean: float
    log_il6_scale: float
    coefficient: float
    intercept: float
    threshold: float

    def cutoff_pg_per_ml(self) -> float:
        """c = exp(mean + scale * (logit(t) - b) / w), the IL6 at which p reaches t (spec)."""
        t = self.threshold
        logit = math.log(t) - math.log1p(-t)
        exponent = self.log_il6_mean + self.log_il6_scale * (logit - self.intercept) / self.coefficient
        try:
            return math.exp(exponent)
        except OverflowError:
            return math.inf

    def probability(self, pg_per_ml: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """P(progressive) computed by hand: logistic(w (ln x - mean) / scale + b)."""
        z = (np.log(pg_per_ml) - self.log_il6_mean) / self.log_il6_scale
        result: np.ndarray[Any, Any] = expit(self.coefficient * z + self.intercept)
        return result

    def as_texts(self) -> dict[str, str]:
        """Each parameter as the manifest writes it: ``repr`` of the float, which reads back exactly."""
        return {
            MEAN: repr(self.log_il6_mean),
            SCALE: repr(self.log_il6_scale),
            COEFFICIENT: repr(self.coefficient),
            INTERCEPT: repr(self.intercept),
            THRESHOLD: repr(self.threshold),
        }


def cutoff_text(cutoff: float) -> str:
    """The cutoff as a decimal string of at most 15 significant digits.

    ``repr`` of a float can need 17 digits, more than a manifest parameter may carry
    (``app.domain.decimals.BINARY64_DIGITS``); rounding to 15 moves the cutoff by at most 5e-15 relative,
    far inside ``CUTOFF_BAND``, and the grid proof runs against this rounded value.
    """
    if not math.isfinite(cutoff) or cutoff <= 0:
        raise ClassifierDefinitionError("the compiled cutoff is not a finite positive concentration")
    return plain(Decimal(format(cutoff, f".{BINARY64_DIGITS}g")))


def _fitted_part(estimator: Any) -> tuple[Any, Any, Any]:
    if not isinstance(estimator, TunedThresholdClassifierCV):
        raise ClassifierDefinitionError("artifact is not a TunedThresholdClassifierCV")
    pipeline = getattr(estimator, "estimator_", None)
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 3:
        raise ClassifierDefinitionError("artifact is not the three-step pipeline of this kind")
    log, scaler, logistic = (step for _, step in pipeline.steps)
    if not isinstance(log, FunctionTransformer) or log.func is not np.log or log.kw_args:
        raise ClassifierDefinitionError("the pipeline's first step must be FunctionTransformer(np.log)")
    if not isinstance(scaler, StandardScaler) or not (scaler.with_mean and scaler.with_std):
        raise ClassifierDefinitionError("the pipeline's second step must be a centring StandardScaler")
    if not isinstance(logistic, LogisticRegression):
        raise ClassifierDefinitionError("the pipeline's last step must be LogisticRegression")
    return estimator, scaler, logistic


def model_parameters(estimator: Any) -> ModelParameters:
    """Read the fitted numbers from an estimator of this kind, refusing any other structure."""
    tuned, scaler, logistic = _fitted_part(estimator)
    if [str(label) for label in np.asarray(tuned.classes_)] != list(CLASSES):
        raise ClassifierDefinitionError(f"the model's labels must be {list(CLASSES)}")
    if tuned.response_method != "predict_proba" or tuned._curve_scorer._get_pos_label() != POSITIVE:
        raise ClassifierDefinitionError(f"the threshold must apply to P({POSITIVE}) from predict_proba")
    if np.shape(logistic.coef_) != (1, 1) or np.shape(scaler.mean_) != (1,):
        raise ClassifierDefinitionError("the model must have exactly one feature, serum IL6 in pg/mL")
    parameters = ModelParameters(
        log_il6_mean=float(scaler.mean_[0]),
        log_il6_scale=float(scaler.scale_[0]),
        # scikit-learn's coefficient and intercept are for classes_[1] ("stable"): negate for "progressive"
        coefficient=-float(logistic.coef_[0, 0]),
        intercept=-float(logistic.intercept_[0]),
        threshold=float(tuned.best_threshold_),
    )
    values = (parameters.log_il6_mean, parameters.log_il6_scale, parameters.coefficient, parameters.intercept)
    if not all(math.isfinite(value) for value in values) or parameters.log_il6_scale <= 0:
        raise ClassifierDefinitionError("the fitted parameters are not finite")
    if not 0 < parameters.threshold < 1:
        raise ClassifierDefinitionError("the tuned threshold is not a probability strictly between 0 and 1")
    return parameters


def prove_cutoff(estimator: Any, parameters: ModelParameters, cutoff: Decimal) -> None:
    """Show on ``GRID_PG_PER_ML`` that the estimator is the cutoff rule (spec, "compile-to-cutoff").

    predict_proba's positive column must equal the hand-computed logistic within ``PROBABILITY_TOLERANCE``
    and predict() must be "progressive" exactly when x >= cutoff, except within ``CUTOFF_BAND`` of it.
    """
    if parameters.coefficient <= 0:
        raise ClassifierDefinitionError("the coefficient must be > 0: higher IL6, higher risk (spec)")
    grid = GRID_PG_PER_ML.reshape(-1, 1)
    positive = list(np.asarray(estimator.classes_)).index(POSITIVE)
    by_sklearn = np.asarray(estimator.predict_proba(grid))[:, positive]
    gap = float(np.max(np.abs(by_sklearn - parameters.probability(GRID_PG_PER_ML))))
    if not gap <= PROBABILITY_TOLERANCE:
        raise ClassifierDefinitionError(f"predict_proba differs from the logistic formula by {gap:.3g}")
    c = float(cutoff)
    predicted = np.asarray(estimator.predict(grid)) == POSITIVE
    expected = c <= GRID_PG_PER_ML
    outside_band = np.abs(GRID_PG_PER_ML - c) > CUTOFF_BAND * c
    disagreeing = int(np.count_nonzero((predicted != expected) & outside_band))
    if disagreeing:
        raise ClassifierDefinitionError(
            f"predict() disagrees with the cutoff {cutoff} pg/mL at {disagreeing} grid points"
        )


def _software_check(definition: ClassifierDefinition) -> None:
    software = definition.manifest.get("software")
    recorded = software.get("scikit-learn") if isinstance(software, Mapping) else None
    if recorded != sklearn.__version__:
        raise ClassifierDefinitionError(
            f"{definition.ref} was trained with scikit-learn {recorded}; "
            f"scikit-learn {sklearn.__version__} is installed"
        )


def _artifact_check(definition: ClassifierDefinition, data: bytes) -> None:
    spec = definition.manifest.get("artifact")
    if not isinstance(spec, Mapping) or spec.get("format") != artifacts.FORMAT:
        raise ClassifierDefinitionError(f"{definition.ref}: the artifact format must be {artifacts.FORMAT}")
    if spec.get("trusted_types") != list(artifacts.artifact_types(data)):
        raise ClassifierDefinitionError(f"{definition.ref}: artifact types differ from the manifest's list")


def _verify(definition: ClassifierDefinition, estimator: Any) -> None:
    parameters = model_parameters(estimator)
    for name, text in parameters.as_texts().items():
        if definition.parameter(name).value != text:
            raise ClassifierDefinitionError(f"{definition.ref}: {name} differs from the fitted model's")
    if parameters.coefficient <= 0:
        raise ClassifierDefinitionError(
            f"{definition.ref}: the coefficient must be > 0 (higher IL6, higher risk)"
        )
    cutoff = definition.parameter(rules.CUTOFF)
    if cutoff.value != cutoff_text(parameters.cutoff_pg_per_ml()):
        raise ClassifierDefinitionError(f"{definition.ref}: {rules.CUTOFF} differs from the fitted model's")
    prove_cutoff(estimator, parameters, cutoff.as_decimal())


def build(definition: ClassifierDefinition, artifact: bytes | None) -> Classifier:
    """Verify a fitted version against its artifact and return its rule-set classifier (a ``Builder``)."""
    if definition.kind != KIND:
        raise ClassifierDefinitionError(f"{definition.ref} is not a {KIND} classifier")
    if artifact is None:
        raise ClassifierDefinitionError(f"{definition.ref}: a {KIND} version needs its model artifact")
    _software_check(definition)
    _artifact_check(definition, artifact)
    estimator = artifacts.loads(artifact)
    try:
        _verify(definition, estimator)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as error:
        # A well-typed artifact can still lack a fitted attribute: refuse the version, never abort the load.
        raise ClassifierDefinitionError(
            f"{definition.ref}: the model cannot be inspected ({type(error).__name__})"
        ) from None
    return rules.RuleSetClassifier(definition, kind=KIND)
