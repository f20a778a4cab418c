"""A fitted scikit-learn classifier version for bench/audit_appends.py ``--classifier model``.

The cohort is SYNTHETIC: log-normal IL6 values, higher for progressive than for stable disease, chosen only
so that the two outcomes overlap. It describes no patient; the version fitted on it is a benchmark
fixture, never a clinical model. The version is trained, registered and activated with the installed
``il6`` command, exactly as a trial team would (docs/classifiers.md), so the service decides with the
fitted model compiled to its cutoff, and the sklearn floor can load the very artifact it serves.
"""

import csv
import io
import math
import random
from collections.abc import Callable
from pathlib import Path

NAME = "bench-model"
VERSION = "1.0.0"
SUBJECTS = 60


def synthetic_cohort_csv(n: int = SUBJECTS, seed: int = 7) -> bytes:
    """``n`` synthetic subjects, half of each outcome, as the training command reads them."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["subject_id", "il6", "unit", "assay", "outcome"])
    for index in range(n):
        outcome = "progressive" if index % 2 else "stable"
        value = math.exp(rng.gauss(math.log(40.0 if outcome == "progressive" else 3.0), 1.0))
        reported = "<1.5" if value < 1.5 else f"{value:.1f}"
        writer.writerow([f"SYN-{index:04d}", reported, "pg/mL", "elecsys-il6", outcome])
    return out.getvalue().encode()


def provision(run: Callable[..., str], scratch: Path) -> Path:
    """Train, register and activate the version with ``run`` (an ``il6`` command line's arguments -> its
    standard output); the path of its skops artifact."""
    data = scratch / "synthetic-cohort.csv"
    data.write_bytes(synthetic_cohort_csv())
    versions = scratch / "versions"
    trained = run(
        "classifiers", "train", "--data", str(data), "--name", NAME, "--version", VERSION,
        "--out", str(versions), "--repeats", "2",
    )  # fmt: skip
    (digest,) = [line.split()[1] for line in trained.splitlines() if line.startswith("digest ")]
    directory = versions / NAME / VERSION
    run("classifiers", "register", str(directory), "--digest", digest, "--reason", "benchmark fixture")
    run("classifiers", "activate", f"{NAME}@{VERSION}", "--reason", "benchmark fixture")
    return directory / "model.skops"
