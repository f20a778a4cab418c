"""What every classifier version is and does, whatever computes it (a rule set or a fitted model)."""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

from app.domain.assays import Assay
from app.domain.decimals import BINARY64_DIGITS, significant
from app.domain.eligibility import Eligibility
from app.domain.errors import InvalidInput
from app.domain.il6 import IL6Measurement
from app.domain.risk import Risk
from app.domain.sources import Source
from app.domain.specimen import Specimen


class ClassifierDefinitionError(Exception):
    """A classifier definition that is malformed, incomplete or does not match its recorded digest."""


class VersionStatus(StrEnum):
    """Where a version stands in its lifecycle. Drafts are never served; retired versions only if pinned."""

    DRAFT = "draft"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True)
class Parameter:
    """One number or setting a version decides with, and where it comes from."""

    name: str
    value: str
    description: str
    sources: tuple[Source, ...]
    unit: str | None = None

    def as_decimal(self) -> Decimal:
        try:
            value = Decimal(self.value)
        except InvalidOperation:
            raise ClassifierDefinitionError(f"parameter {self.name} is not a decimal") from None
        if not value.is_finite():
            raise ClassifierDefinitionError(f"parameter {self.name} is not finite")
        if significant(value)[0] > BINARY64_DIGITS:
            raise ClassifierDefinitionError(
                f"parameter {self.name}: at most {BINARY64_DIGITS} significant digits"
            )
        return value


@dataclass(frozen=True)
class ClassifierDefinition:
    """An immutable classifier version: its manifest as parsed, and the manifest document it came from."""

    name: str
    version: str
    kind: str
    title: str
    intended_use: str
    parameters: tuple[Parameter, ...]
    assays: tuple[Assay, ...]
    limitations: tuple[str, ...]
    manifest: Mapping[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def parameter(self, name: str) -> Parameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise ClassifierDefinitionError(f"{self.ref} has no parameter {name}")

    def assay(self, assay_id: str) -> Assay:
        """The assay a result names, as this version defines it; refuses one the version does not list."""
        for assay in self.assays:
            if assay.id == assay_id:
                return assay
        known = ", ".join(sorted(assay.id for assay in self.assays))
        raise InvalidInput("/il6/assay", f"Unknown assay for {self.ref}; accepted assay ids: {known}")


@dataclass(frozen=True)
class Decision:
    """What a classifier version decided for one result."""

    measurement: IL6Measurement
    detectable: bool | None
    eligibility: Eligibility
    risk: Risk


class Classifier(Protocol):
    """A classifier version ready to decide. Implementations are pure and deterministic."""

    @property
    def definition(self) -> ClassifierDefinition: ...

    def decide(self, measurement: IL6Measurement, specimen: Specimen) -> Decision: ...
