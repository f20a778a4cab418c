"""The statistics of a training report, each method named with its source.

Every number here is a statistical setting, not a clinical one: the 95% level, the bootstrap's resample
count and seed, the histogram's bin width.
"""

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

LEVEL = 0.95
Z = NormalDist().inv_cdf(0.5 + LEVEL / 2)
BOOTSTRAP_RESAMPLES = 2000
HISTOGRAM_BIN_LOG10 = 0.5
"""Histogram bins half a decade wide on the log10 axis (each about a 3.16-fold range of IL6)."""

AUC_METHOD = (
    f"mean over repeats of the out-of-fold AUC (Mann-Whitney, ties count one half); 95% interval: "
    f"percentile bootstrap (Efron & Tibshirani 1993) of {BOOTSTRAP_RESAMPLES} resamples of subjects, "
    "stratified by outcome, with the training seed"
)
WILSON_METHOD = (
    "mean over repeats of the out-of-fold proportion; 95% Wilson score interval (Wilson 1927) with the "
    "number of subjects, not of predictions, as n, so repeating the cross-validation does not narrow it"
)


@dataclass(frozen=True)
class Estimate:
    estimate: float
    low: float
    high: float
    method: str

    @property
    def width(self) -> float:
        return self.high - self.low

    def as_json(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "ci95": [self.low, self.high], "method": self.method}


def wilson_interval(proportion: float, n: int) -> tuple[float, float]:
    """Wilson score interval for a proportion observed in n trials (Wilson EB, JASA 1927;22:209-212)."""
    if n <= 0 or not 0 <= proportion <= 1:
        raise ValueError("a proportion in [0, 1] over n > 0 trials")
    z2 = Z * Z
    centre = (proportion + z2 / (2 * n)) / (1 + z2 / n)
    half = Z / (1 + z2 / n) * float(np.sqrt(proportion * (1 - proportion) / n + z2 / (4 * n * n)))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(hits: NDArray[np.bool_], n: int) -> Estimate:
    """A proportion averaged over repeats (``hits``: repeats x subjects), with its Wilson interval."""
    estimate = float(np.mean(hits))
    low, high = wilson_interval(estimate, n)
    return Estimate(estimate, low, high, WILSON_METHOD)


def _pair_wins(scores: NDArray[np.float64], positive: NDArray[np.bool_]) -> NDArray[np.float64]:
    """For each positive-negative pair, the mean over repeats of 1 (positive ranked higher), 1/2 (tie), 0."""
    pos, neg = scores[:, positive], scores[:, ~positive]
    wins = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    result: NDArray[np.float64] = wins.mean(axis=0)
    return result


def _multiplicities(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """How often each of n subjects is drawn in each of ``BOOTSTRAP_RESAMPLES`` resamples of size n."""
    counts = np.zeros((BOOTSTRAP_RESAMPLES, n))
    np.add.at(
        counts, (np.arange(BOOTSTRAP_RESAMPLES)[:, None], rng.integers(0, n, (BOOTSTRAP_RESAMPLES, n))), 1
    )
    return counts


def auc(scores: NDArray[np.float64], positive: NDArray[np.bool_], *, seed: int) -> Estimate:
    """Out-of-fold AUC (``scores``: repeats x subjects) with a stratified percentile-bootstrap interval.

    AUC is linear in the pair outcomes, so a resample's AUC is w_pos . W . w_neg / (n_pos n_neg), with
    w the multiplicities of the resampled subjects and W the repeat-averaged pair wins.
    """
    wins = _pair_wins(scores, positive)
    n_pos, n_neg = wins.shape
    rng = np.random.default_rng(seed)
    w_pos, w_neg = _multiplicities(rng, n_pos), _multiplicities(rng, n_neg)
    resampled = np.einsum("bi,ij,bj->b", w_pos, wins, w_neg) / (n_pos * n_neg)
    low, high = np.quantile(resampled, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return Estimate(float(wins.mean()), float(low), float(high), AUC_METHOD)


def logrank(
    months: NDArray[np.float64], event: NDArray[np.bool_], high: NDArray[np.bool_]
) -> dict[str, Any] | None:
    """Log-rank test between the low and high groups (scipy.stats.logrank; Mantel 1966), or ``None`` when
    a group is empty or no event was observed. ``statistic`` is scipy's signed z; its square is the
    usual chi-square with one degree of freedom."""
    if high.all() or not high.any() or not event.any():
        return None

    def group(mask: NDArray[np.bool_]) -> Any:
        return stats.CensoredData(uncensored=months[mask & event], right=months[mask & ~event])

    result = stats.logrank(group(~high), group(high))
    statistic, p_value = float(result.statistic), float(result.pvalue)
    if not (np.isfinite(statistic) and np.isfinite(p_value)):
        return None
    return {
        "test": "log-rank",
        "statistic": statistic,
        "chi_square": statistic * statistic,
        "p_value": p_value,
        "groups": {
            name: {"n": int(np.count_nonzero(mask)), "events": int(np.count_nonzero(mask & event))}
            for name, mask in (("low", ~high), ("high", high))
        },
    }


def histogram(
    pg_per_ml: NDArray[np.float64], labels: NDArray[np.str_], classes: tuple[str, ...]
) -> dict[str, Any]:
    """Counts of each outcome in log10(pg/mL) bins ``HISTOGRAM_BIN_LOG10`` wide, edges on multiples of it."""
    log10 = np.log10(pg_per_ml)
    first = np.floor(log10.min() / HISTOGRAM_BIN_LOG10)
    last = np.floor(log10.max() / HISTOGRAM_BIN_LOG10) + 1
    edges = np.arange(first, last + 1) * HISTOGRAM_BIN_LOG10
    return {
        "axis": "log10 pg/mL",
        "edges": [float(edge) for edge in edges],
        "counts": {
            label: [int(c) for c in np.histogram(log10[labels == label], edges)[0]] for label in classes
        },
        "note": "censored results at the value they entered the fit with",
    }
