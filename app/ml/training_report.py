"""The training report as a person reads it at the command line: the cohort, metrics with their
intervals, the log-rank test, the compiled cutoff, and every warning about how far to trust them."""

from collections.abc import Mapping
from typing import Any

from app.domain.il6 import PG_PER_ML
from app.ml.training import TrainingReport


def _interval(metric: Mapping[str, Any]) -> str:
    low, high = metric["ci95"]
    return f"{metric['estimate']:.2f}  (95% CI {low:.2f} to {high:.2f})"


def format_report(report: TrainingReport) -> str:
    """The report for a person: cohort, metrics with intervals, log-rank, cutoff and warnings."""
    training = report.training
    counts = ", ".join(f"{label} {count}" for label, count in training["outcome_counts"].items())
    cv = training["cv"]
    censored = training["censored_n"]
    lines = [
        f"{report.ref}: fitted on {training['n']} subjects ({counts}); {censored} censored results",
        f"cross-validation: {cv['scheme']}, {cv['folds']} folds x {cv['repeats']} repeats, seed {cv['seed']}",
        *(f"{name:<12}{_interval(metric)}" for name, metric in training["metrics"].items()),
    ]
    survival = training["survival"]
    if survival is None:
        lines.append("log-rank: not run")
    else:
        groups = ", ".join(f"{g} n={v['n']} events={v['events']}" for g, v in survival["groups"].items())
        lines.append(
            f"log-rank: chi-square {survival['chi_square']:.2f}, p={survival['p_value']:.3g} ({groups})"
        )
    lines.append(f"compiled cutoff: {report.cutoff_pg_per_ml} {PG_PER_ML} (coefficient {report.coefficient})")
    lines.append("warnings:")
    lines.extend(f"  - {warning}" for warning in training["warnings"])
    return "\n".join(lines)
