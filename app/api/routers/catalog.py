"""Reference data: the classifier versions the service serves and the assays it knows."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from app.api.deps import get_registry
from app.api.problems import NOT_FOUND, responses
from app.api.schemas.catalog import (
    AssayList,
    AssayOut,
    ClassifierDetail,
    ClassifierList,
    ClassifierSummary,
    ParameterOut,
    SourceOut,
    UnavailableVersion,
)
from app.domain.assays import ASSAYS
from app.domain.classifiers.registry import ClassifierRegistry, RegisteredVersion

router = APIRouter(prefix="/v1", tags=["reference"])
Registry = Annotated[ClassifierRegistry, Depends(get_registry)]


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
async def get_classifier(name: str, version: str, registry: Registry) -> ClassifierDetail:
    """Show one classifier version: its parameters with their sources, status, digest and manifest."""
    entry = registry.get(name, version)
    if entry is None:
        raise HTTPException(404, "No servable classifier version with this name and version.")
    definition = entry.definition
    return ClassifierDetail.model_validate(
        _summary(registry, entry)
        | {
            "intended_use": definition.intended_use,
            "limitations": list(definition.limitations),
            "manifest": dict(definition.manifest),
            "parameters": [
                ParameterOut(
                    name=p.name,
                    value=p.value,
                    unit=p.unit,
                    description=p.description,
                    sources=[SourceOut(citation=s.citation, url=s.url, quote=s.quote) for s in p.sources],
                )
                for p in definition.parameters
            ],
        }
    )


@router.get("/assays", response_model=AssayList)
async def list_assays() -> AssayList:
    """List the IL6 assays the service knows, with their limit of detection and its source."""
    return AssayList(
        items=[
            AssayOut(
                id=a.id,
                name=a.name,
                manufacturer=a.manufacturer,
                method=a.method,
                lod_pg_per_ml=a.lod_pg_per_ml,
                measuring_range_pg_per_ml=a.measuring_range_pg_per_ml,
                specimens=list(a.specimens),
                source=a.source,
                notes=a.notes,
            )
            for a in ASSAYS.values()
        ]
    )
