"""Reading a classifier manifest and computing the digest that pins it.

The digest of a version is ``sha256:`` + the SHA-256 of its manifest serialised by the JSON Canonicalization
Scheme (RFC 8785). A version with a model artifact names the artifact's own SHA-256 in its manifest
(``artifact.sha256``), so the digest covers both; the artifact's bytes are checked against it on load.
"""

import hashlib
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import rfc8785

from app.domain.assays import Assay
from app.domain.classifiers.base import ClassifierDefinition, ClassifierDefinitionError, Parameter
from app.domain.decimals import BINARY64_DIGITS, significant
from app.domain.sources import Source

MANIFEST_SCHEMA = 1


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """The SHA-256 of the manifest's RFC 8785 form; a manifest without one (an integer beyond 2**53, a
    number that is not finite) is refused."""
    try:
        canonical = rfc8785.dumps(dict(manifest))
    except rfc8785.CanonicalizationError as error:
        raise ClassifierDefinitionError(f"the manifest has no RFC 8785 form: {error}") from None
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def artifact_digest(artifact: bytes) -> str:
    return "sha256:" + hashlib.sha256(artifact).hexdigest()


def _text(document: Mapping[str, Any], key: str, where: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise ClassifierDefinitionError(f"{where}: '{key}' must be a non-empty string")
    return value


def _optional_text(document: Mapping[str, Any], key: str, where: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise ClassifierDefinitionError(f"{where}: '{key}' must be a string")
    return value


def _list(document: Mapping[str, Any], key: str, where: str) -> Sequence[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise ClassifierDefinitionError(f"{where}: '{key}' must be a list")
    return value


def _sources(document: Mapping[str, Any], where: str) -> tuple[Source, ...]:
    items = _list(document, "sources", where)
    if not all(isinstance(source, dict) for source in items):
        raise ClassifierDefinitionError(f"{where}: each source must be an object")
    sources = tuple(
        Source(
            citation=_text(source, "citation", where),
            url=_optional_text(source, "url", where),
            quote=_optional_text(source, "quote", where),
        )
        for source in items
    )
    if not sources:
        raise ClassifierDefinitionError(f"{where}: needs at least one source")
    return sources


def _concentration(text: Any, where: str) -> Decimal:
    """A decimal string of pg/mL, finite and >= 0: numbers in manifests are strings, so they stay exact."""
    if not isinstance(text, str):
        raise ClassifierDefinitionError(f"{where}: concentrations are decimal strings")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ClassifierDefinitionError(f"{where}: '{text}' is not a decimal") from None
    if not value.is_finite() or value < 0:
        raise ClassifierDefinitionError(f"{where}: concentrations are finite and >= 0")
    if significant(value)[0] > BINARY64_DIGITS:
        raise ClassifierDefinitionError(f"{where}: at most {BINARY64_DIGITS} significant digits")
    return value


def _assay(item: Any, where: str) -> Assay:
    if not isinstance(item, dict):
        raise ClassifierDefinitionError(f"{where}: each assay must be an object")
    assay_id = _text(item, "id", where)
    where = f"{where} assay {assay_id}"
    low_high = item.get("measuring_range_pg_per_ml")
    if not isinstance(low_high, list) or len(low_high) != 2:
        raise ClassifierDefinitionError(f"{where}: 'measuring_range_pg_per_ml' must be [low, high]")
    specimens = _list(item, "specimens", where)
    if not specimens or not all(isinstance(specimen, str) for specimen in specimens):
        raise ClassifierDefinitionError(f"{where}: 'specimens' must list specimen types")
    return Assay(
        id=assay_id,
        name=_text(item, "name", where),
        manufacturer=_text(item, "manufacturer", where),
        method=_text(item, "method", where),
        lod_pg_per_ml=_concentration(item.get("lod_pg_per_ml"), f"{where} lod_pg_per_ml"),
        measuring_range_pg_per_ml=(
            _concentration(low_high[0], f"{where} measuring range"),
            _concentration(low_high[1], f"{where} measuring range"),
        ),
        specimens=tuple(specimens),
        sources=_sources(item, where),
        notes=_optional_text(item, "notes", where) or "",
    )


def parse_manifest(manifest: Mapping[str, Any]) -> ClassifierDefinition:
    """Validate a manifest document and build its definition; refuse anything incomplete."""
    if manifest.get("manifest_schema") != MANIFEST_SCHEMA:
        raise ClassifierDefinitionError(f"unsupported manifest_schema, expected {MANIFEST_SCHEMA}")
    name = _text(manifest, "name", "manifest")
    version = _text(manifest, "version", "manifest")
    where = f"{name}@{version}"
    parameters = []
    for item in _list(manifest, "parameters", where):
        if not isinstance(item, dict):
            raise ClassifierDefinitionError(f"{where}: each parameter must be an object")
        parameter_name = _text(item, "name", where)
        parameters.append(
            Parameter(
                name=parameter_name,
                value=_text(item, "value", f"{where} {parameter_name}"),
                description=_text(item, "description", f"{where} {parameter_name}"),
                sources=_sources(item, f"{where} {parameter_name}"),
                unit=_optional_text(item, "unit", f"{where} {parameter_name}"),
            )
        )
    assays = tuple(_assay(item, where) for item in _list(manifest, "assays", where))
    if not assays:
        raise ClassifierDefinitionError(f"{where}: a version must define the assays it decides on")
    if len({assay.id for assay in assays}) != len(assays):
        raise ClassifierDefinitionError(f"{where}: an assay id is listed twice")
    limitations = tuple(str(item) for item in _list(manifest, "limitations", where))
    return ClassifierDefinition(
        name=name,
        version=version,
        kind=_text(manifest, "kind", where),
        title=_text(manifest, "title", where),
        intended_use=_text(manifest, "intended_use", where),
        parameters=tuple(parameters),
        assays=assays,
        limitations=limitations,
        manifest=manifest,
    )
