"""Response body of the model card: a classifier version's manifest, arranged for a reader.

``ManifestSections`` are the manifest's own sections that the loader does not check (a fitted version's
``training``, its provenance); the card reads each one through these models, and lists any that do not
follow them as unreadable rather than showing part of it.
"""

from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, model_validator

from app.api.schemas.catalog import AssayOut, ClassifierSummary, ParameterOut, SourceOut

Count = Annotated[int, Field(ge=0, strict=True)]
Integer = Annotated[int, Field(strict=True)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class StatementOut(BaseModel):
    statement: str
    sources: list[SourceOut]


class CriterionOut(BaseModel):
    name: str = Field(description="What the criterion decides: 'eligibility' or 'risk'.")
    statement: str
    sources: list[SourceOut]


class MetricOut(BaseModel):
    estimate: Number
    ci95: tuple[Number, Number] | None = Field(None, description="The 95% interval: low, high.")
    method: str | None = Field(None, description="How the estimate and its interval were computed.")


class SurvivalGroupOut(BaseModel):
    n: Count
    events: Count


class SurvivalOut(BaseModel):
    test: str = Field(description="The test comparing survival between the risk groups, e.g. 'log-rank'.")
    statistic: Number | None = None
    chi_square: Number | None = Field(None, description="The statistic squared: chi-square with 1 df.")
    p_value: Number | None = None
    groups: dict[str, SurvivalGroupOut] = Field(description="Subjects and events by risk group.")


class Il6DistributionOut(BaseModel):
    axis: Literal["log10 pg/mL"] = Field(description="The scale of the bin edges.")
    edges: list[Number] = Field(min_length=2, description="Bin edges in log10 pg/mL, increasing.")
    counts: dict[str, list[Count]] = Field(
        min_length=1, description="Training subjects per bin, by outcome; one count per bin."
    )
    note: str | None = Field(None, description="How the bins place censored results, say.")

    @model_validator(mode="after")
    def _bins_agree(self) -> Self:
        if any(low >= high for low, high in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must increase")
        if any(len(counts) != len(self.edges) - 1 for counts in self.counts.values()):
            raise ValueError("each outcome needs one count per bin")
        return self


class TrainingSummary(BaseModel):
    data_sha256: str | None = Field(None, description="sha256 of the training data file's bytes.")
    n: Count = Field(description="Subjects in the training data.")
    outcome_counts: dict[str, Count] = Field(description="Subjects by outcome label.")
    censored_n: Count | None = Field(None, description="Results reported below a limit, as '<x'.")
    positive_label: str | None = Field(None, description="The outcome that means high risk.")
    censoring_rule: str | None = Field(None, description="How a censored result enters the fit.")
    cv: dict[str, str | Integer | Number] | None = Field(None, description="The cross-validation scheme.")
    threshold_selection: str | None = None
    metrics: dict[str, MetricOut] = Field({}, description="Out-of-sample metrics by name (auc, ...).")
    survival: SurvivalOut | None = None
    il6_distribution: Il6DistributionOut | None = Field(
        None, description="Histogram of the training data's IL6 by outcome, plotted on the card."
    )
    warnings: list[str] = Field([], description="What the fit's user must know (sample size, ...).")


class ArtifactOut(BaseModel):
    file: str
    sha256: str = Field(description="sha256 of the artifact's bytes, checked when the version loads.")
    format: str | None = None


class ManifestSections(BaseModel):
    criteria: list[CriterionOut] = []
    training: TrainingSummary | None = Field(
        None, description="How a fitted version was trained and how it performed; null for a rule set."
    )
    sources: list[SourceOut] = Field([], description="The version's own sources, beside its parameters'.")
    software: dict[str, str] = Field({}, description="Library versions the version was built with.")
    created_by: str | None = None
    created_at: str | None = None
    artifact: ArtifactOut | None = Field(None, description="The model file, for a fitted version.")


class ClassifierCard(ManifestSections, ClassifierSummary):
    """A classifier version's model card: what it is for, what it was built from, how well it did."""

    intended_use: str = Field(description="The manifest's statement of intended use.")
    restriction: StatementOut = Field(
        description="The combination the IL6 association holds for, from the source study; on every card."
    )
    limitations: list[str]
    parameters: list[ParameterOut]
    assays: list[AssayOut] = Field(description="The assays this version decides on, with their limits.")
    unreadable: list[str] = Field(
        description="Manifest sections that do not follow the card's schema and are left off it."
    )
