"""Plain functions that build domain inputs for the unit tests: measurements, specimens, definitions."""

import json
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.domain.assays import Assay
from app.domain.classifiers.manifest import manifest_digest
from app.domain.classifiers.registry import bundled_definitions, load_registry
from app.domain.il6 import Comparator, IL6Measurement, measure
from app.domain.specimen import Specimen, SpecimenType

DEFAULT_NAME = "il6-enrichment"
BUNDLED_VERSION = "1.0.0"
COLLECTED_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)

ELECSYS_IL6: Assay = (
    load_registry().resolve(f"{DEFAULT_NAME}@{BUNDLED_VERSION}").definition.assay("elecsys-il6")
)
"""The Elecsys IL-6 assay as the bundled version defines it (limit of detection 1.5 pg/mL)."""

# Longest prefix first, so "<=" is not read as "<" followed by "=1.5".
_PREFIXES = (Comparator.LE, Comparator.GE, Comparator.LT, Comparator.GT)


def reported(text: str, unit: str = "pg/mL", assay: Assay = ELECSYS_IL6) -> IL6Measurement:
    """A measurement as a laboratory writes it: "1.5", "<1.5", ">=17.85" (comparator, then the value)."""
    for comparator in _PREFIXES:
        if text.startswith(comparator.value):
            return measure(Decimal(text[len(comparator.value) :]), unit, comparator, assay)
    return measure(Decimal(text), unit, None, assay)


def specimen(kind: SpecimenType = SpecimenType.SERUM) -> Specimen:
    return Specimen(type=kind, collected_at=COLLECTED_AT)


def bundled_definitions_path() -> Path:
    """The shipped definitions directory as a file-system path (the package is installed as files)."""
    path = Path(str(bundled_definitions()))
    assert (path / "registry.json").is_file(), path
    return path


def copy_definitions(destination: Path) -> Path:
    """A private copy of the shipped definitions directory, safe to tamper with."""
    target = destination / "definitions"
    shutil.copytree(bundled_definitions_path(), target)
    return target


def read_json(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def write_json(path: Path, document: dict[str, Any], *, indent: int | None = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")


def manifest_path(definitions: Path, version: str = BUNDLED_VERSION, name: str = DEFAULT_NAME) -> Path:
    return definitions / name / version / "manifest.json"


def bundled_manifest() -> dict[str, Any]:
    return read_json(manifest_path(bundled_definitions_path()))


def parameter(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    """The parameter object called ``name`` inside a manifest document (for editing in place)."""
    for item in manifest["parameters"]:
        if item["name"] == name:
            assert isinstance(item, dict)
            return item
    raise AssertionError(f"manifest has no parameter {name}")


def add_version(
    definitions: Path,
    version: str,
    status: str,
    *,
    manifest: dict[str, Any] | None = None,
    digest: str | None = None,
) -> dict[str, Any]:
    """Write a new version of the default classifier next to the bundled one and list it in registry.json.

    The manifest defaults to the bundled one with its version changed; the recorded digest defaults to the
    manifest's true digest. Returns the manifest written.
    """
    document = bundled_manifest() if manifest is None else manifest
    document["version"] = version
    write_json(manifest_path(definitions, version), document)
    index = read_json(definitions / "registry.json")
    index["classifiers"].append(
        {
            "name": DEFAULT_NAME,
            "version": version,
            "status": status,
            "digest": manifest_digest(document) if digest is None else digest,
        }
    )
    write_json(definitions / "registry.json", index)
    return document
