"""A rule-set version's risk rule as a scikit-learn estimator.

Later classifier versions may be fitted scikit-learn models over normalised IL6; expressing the rule set in
the same shape lets the two be compared, cross-validated and batch-scored side by side with scikit-learn's
tools. The decisions the service gives still come from the domain rules (exact decimals, censoring); this
estimator sees exact values in pg/mL as floats and must agree with those rules on every one of them.
"""

from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from app.domain.classifiers.base import ClassifierDefinition
from app.domain.classifiers.rules import RuleSetClassifier
from app.domain.risk import RiskGroup

CLASSES = np.array([RiskGroup.LOW.value, RiskGroup.HIGH.value])


class RiskCutoffEstimator(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Predicts ``"high"`` when IL6 (one column, pg/mL) is at or above the cutoff, else ``"low"``.

    The cutoff is a parameter, never a default: build it from a classifier version with
    ``from_definition`` so that the number keeps its source.
    """

    def __init__(self, cutoff_pg_per_ml: float | None = None) -> None:
        self.cutoff_pg_per_ml = cutoff_pg_per_ml

    @classmethod
    def from_definition(cls, definition: ClassifierDefinition) -> "RiskCutoffEstimator":
        return cls(cutoff_pg_per_ml=float(RuleSetClassifier(definition).cutoff_pg_per_ml))

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> Self:  # noqa: N803 - scikit-learn's names
        """Nothing is learned: the rule is fixed. Validates the input and the cutoff."""
        if self.cutoff_pg_per_ml is None or not np.isfinite(self.cutoff_pg_per_ml):
            raise ValueError("cutoff_pg_per_ml must be a finite number taken from a classifier version")
        validate_data(self, X, reset=True, ensure_min_features=1)
        if self.n_features_in_ != 1:
            raise ValueError("expects one feature: serum IL6 in pg/mL")
        self.classes_ = CLASSES
        self.cutoff_ = float(self.cutoff_pg_per_ml)
        return self

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:  # noqa: N803
        check_is_fitted(self, "classes_")
        values: NDArray[np.float64] = validate_data(self, X, reset=False)
        if np.any(values < 0):
            raise ValueError("IL6 concentrations cannot be negative")
        high = (values[:, 0] >= self.cutoff_).astype(np.float64)
        return np.column_stack([1.0 - high, high])

    def predict(self, X: ArrayLike) -> NDArray[Any]:  # noqa: N803
        labels: NDArray[Any] = CLASSES[np.argmax(self.predict_proba(X), axis=1)]
        return labels
