"""Response bodies of the reference endpoints: classifiers and assays."""

from typing import Any

from pydantic import BaseModel, Field

from app.api.schemas.common import JsonNumber
from app.domain.classifiers.base import VersionStatus


class SourceOut(BaseModel):
    citation: str
    url: str | None = None
    quote: str | None = Field(None, description="The source's own words, where quoted.")


class ParameterOut(BaseModel):
    name: str
    value: str
    unit: str | None
    description: str
    sources: list[SourceOut]


class ClassifierSummary(BaseModel):
    name: str
    version: str
    kind: str
    title: str
    status: VersionStatus
    default: bool = Field(description="True for the version that decides requests that pin none.")
    digest: str


class UnavailableVersion(BaseModel):
    name: str
    version: str
    reason: str


class ClassifierList(BaseModel):
    items: list[ClassifierSummary]
    unavailable: list[UnavailableVersion] = Field(
        description="Versions listed in the registry that failed verification and are not served."
    )


class AssayOut(BaseModel):
    id: str
    name: str
    manufacturer: str
    method: str
    lod_pg_per_ml: JsonNumber = Field(description="Limit of detection, pg/mL: the eligibility threshold.")
    measuring_range_pg_per_ml: tuple[JsonNumber, JsonNumber]
    specimens: list[str]
    sources: list[SourceOut]
    notes: str


class ClassifierDetail(ClassifierSummary):
    intended_use: str
    parameters: list[ParameterOut]
    assays: list[AssayOut] = Field(description="The assays this version decides on, with their limits.")
    limitations: list[str]
    manifest: dict[str, Any] = Field(
        description="The manifest as loaded: sha256 of its RFC 8785 canonical form is the digest."
    )


class VersionedAssayOut(AssayOut):
    classifier: str = Field(description="The classifier version (name@version) that defines this assay.")


class AssayList(BaseModel):
    items: list[VersionedAssayOut]
