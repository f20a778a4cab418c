"""SYNTHETIC training cohorts for the model-training tests, and a registry to load what they train.

Every value here is made up: log-normal IL6 distributions chosen only so that the two outcome classes
overlap, survival times drawn from exponential distributions. They describe no patient and no study, and a
model fitted on them is never a clinical model.
"""

import json
import math
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from app.domain.classifiers.registry import bundled_definitions
from app.ml.training import TrainedVersion, registry_entry, write_version

# Synthetic distribution settings (natural log of pg/mL): arbitrary, for tests only.
_LOG_MEAN = {"stable": math.log(3.0), "progressive": math.log(40.0)}
_LOG_SD = 1.0
_MEAN_MONTHS = {"stable": 20.0, "progressive": 6.0}
_LOD = Decimal("1.5")  # the bundled Elecsys IL-6 definition's limit of detection
_UNITS = ("pg/mL", "ng/L", "ng/mL")
HEADER = ("subject_id", "il6", "unit", "assay", "outcome", "survival_months", "event")


def _reported(pg_per_ml: Decimal, unit: str) -> str:
    """The result as a laboratory writes it in ``unit``; below the limit of detection, "<limit"."""
    censored = pg_per_ml < _LOD
    value = _LOD if censored else pg_per_ml
    text = str(value.scaleb(-3)) if unit == "ng/mL" else str(value)  # ng/mL: exactly pg/mL / 1000
    return f"<{text}" if censored else text


def cohort_rows(
    n: int, seed: int = 0, *, with_survival: bool = True, inverted: bool = False
) -> list[dict[str, str]]:
    """n synthetic subjects, alternately stable and progressive; ``inverted`` gives the stable ones the
    higher IL6 (a data set the model kind must refuse)."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(n):
        outcome = ("stable", "progressive")[index % 2]
        drawn_as = {"stable": "progressive", "progressive": "stable"}[outcome] if inverted else outcome
        value = math.exp(rng.normal(_LOG_MEAN[drawn_as], _LOG_SD))
        if index in (0, 2):
            value = 0.5  # two stable subjects below the limit of detection: censored '<1.5'
        unit = _UNITS[index % len(_UNITS)]
        row = {
            "subject_id": f"SYN-{seed}-{index:03d}",
            "il6": _reported(Decimal(f"{value:.1f}"), unit),
            "unit": unit,
            "assay": "elecsys-il6",
            "outcome": outcome,
            "survival_months": "",
            "event": "",
        }
        if with_survival:
            row["survival_months"] = f"{rng.exponential(_MEAN_MONTHS[outcome]):.1f}"
            row["event"] = "1" if rng.random() < 0.8 else "0"
        rows.append(row)
    return rows


def to_csv(rows: list[dict[str, str]], header: tuple[str, ...] = HEADER) -> bytes:
    lines = [",".join(header)] + [",".join(row.get(column, "") for column in header) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def synthetic_cohort(n: int, seed: int = 0, *, with_survival: bool = True, inverted: bool = False) -> bytes:
    """A synthetic cohort as CSV bytes: progressive subjects have higher IL6 (unless ``inverted``)."""
    return to_csv(cohort_rows(n, seed, with_survival=with_survival, inverted=inverted))


def registry_with(root: Path, *trained: TrainedVersion) -> Path:
    """A registry directory: the bundled definitions (base version active) plus each trained draft."""
    definitions = root / "definitions"
    shutil.copytree(str(bundled_definitions()), definitions)
    index = json.loads((definitions / "registry.json").read_text(encoding="utf-8"))
    for version in trained:
        manifest = version.manifest
        write_version(version, definitions / manifest["name"] / manifest["version"])
        index["classifiers"].append(registry_entry(manifest))
    (definitions / "registry.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    return definitions


def resign(definitions: Path, manifest: dict[str, Any]) -> None:
    """Rewrite a version's manifest and record its new digest, as a careless (or hostile) editor would:
    the registry's digest then matches, so only the builder's own checks stand in the way."""
    path = definitions / manifest["name"] / manifest["version"] / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    index = json.loads((definitions / "registry.json").read_text(encoding="utf-8"))
    for entry in index["classifiers"]:
        if (entry["name"], entry["version"]) == (manifest["name"], manifest["version"]):
            entry["digest"] = registry_entry(manifest)["digest"]
    (definitions / "registry.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
