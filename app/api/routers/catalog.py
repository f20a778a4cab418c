"""Reference data: the classifier versions the service serves and the assays it knows."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from app.api.auth import authenticate, requires
from app.api.deps import get_registry
from app.api.problems import NOT_FOUND, responses
from app.api.schemas.catalog import (
    AssayList,
    ClassifierDetail,
    ClassifierList,
    ClassifierSummary,
    ParameterOut,
    SourceOut,
    UnavailableVersion,
    VersionedAssayOut,
)
from app.domain.access import Principal, Scope
from app.domain.assays import Assay
from app.domain.classifiers.base import VersionStatus
from app.domain.classifiers.registry import ClassifierRegistry, RegisteredVersion
from app.domain.sources import Source

router = APIRouter(prefix="/v1", tags=["reference"], dependencies=[Depends(requires(None))])
Registry = Annotated[ClassifierRegistry, Depends(get_registry)]
TRAINING = "training"
"""The manifest section a fitted version's training writes (app/ml/training.py)."""


def _sources(sources: tuple[Source, ...]) -> list[SourceOut]:
    return [SourceOut(citation=s.citation, url=s.url, quote=s.quote) for s in sources]


def _assay(assay: Assay) -> dict[str, object]:
    return {
        "id": assay.id,
        "name": assay.name,
        "manufacturer": assay.manufacturer,
        "method": assay.method,
        "lod_pg_per_ml": assay.lod_pg_per_ml,
        "measuring_range_pg_per_ml": assay.measuring_range_pg_per_ml,
        "specimens": list(assay.specimens),
        "sources": _sources(assay.sources),
        "notes": assay.notes,
    }


def _summary(registry: ClassifierRegistry, entry: RegisteredVersion) -> dict[str, object]:
    definition = entry.definition
    return {
        "name": definition.name,
        "version": definition.version,
        "kind": definition.kind,
        "title": definition.title,
        "status": entry.status,
        "default": registry.resolve(None) is entry,
        "digest": entry.digest,
    }


@router.get("/classifiers", response_model=ClassifierList)
async def list_classifiers(registry: Registry) -> ClassifierList:
    """List classifier versions, their status and digest, and which one decides by default."""
    return ClassifierList(
        items=[ClassifierSummary.model_validate(_summary(registry, e)) for e in registry.listing()],
        unavailable=[
            UnavailableVersion(name=r.name, version=r.version, reason=r.reason) for r in registry.rejected
        ],
    )


@router.get("/classifiers/{name}/{version}", response_model=ClassifierDetail, responses=responses(NOT_FOUND))
async def get_classifier(
    name: str, version: str, registry: Registry, caller: Annotated[Principal, Depends(authenticate)]
) -> ClassifierDetail:
    """Show one classifier version: its parameters with their sources, status, digest and manifest.

    A fitted version's manifest holds its training cohort (counts per IL6 bin, whose cells can be small):
    that section is shown to callers with the read scope only, as the model card is.
    """
    entry = registry.get(name, version)
    if entry is None:
        raise HTTPException(404, "No servable classifier version with this name and version.")
    definition = entry.definition
    manifest = dict(definition.manifest)
    if not caller.allows(Scope.READ):
        manifest.pop(TRAINING, None)
    return ClassifierDetail.model_validate(
        _summary(registry, entry)
        | {
            "intended_use": definition.intended_use,
            "limitations": list(definition.limitations),
            "assays": [_assay(assay) for assay in definition.assays],
            "manifest": manifest,
            "parameters": [
                ParameterOut(
                    name=p.name,
                    value=p.value,
                    unit=p.unit,
                    description=p.description,
                    sources=_sources(p.sources),
                )
                for p in definition.parameters
            ],
        }
    )


@router.get("/assays", response_model=AssayList)
async def list_assays(registry: Registry) -> AssayList:
    """List the assays each servable classifier version decides on, with limit of detection and sources."""
    return AssayList(
        items=[
            VersionedAssayOut.model_validate(_assay(assay) | {"classifier": entry.definition.ref})
            for entry in registry.listing()
            if entry.status is not VersionStatus.DRAFT
            for assay in entry.definition.assays
        ]
    )
