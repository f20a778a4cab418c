"""Rule-set classifiers: the trial's criterion and risk cutoff, with every number taken from the manifest."""

from decimal import Decimal

from app.domain.classifiers.base import ClassifierDefinition, ClassifierDefinitionError, Decision
from app.domain.eligibility import assess_eligibility, detectability
from app.domain.il6 import PG_PER_ML, IL6Measurement
from app.domain.risk import assess_risk
from app.domain.specimen import Specimen, SpecimenType

KIND = "rules"
CUTOFF = "risk.cutoff_pg_per_ml"
SPECIMEN = "eligibility.specimen"


class RuleSetClassifier:
    """Eligibility by detectability against the assay's limit of detection; risk by a fixed cutoff.

    Parameters are read from the definition once, when the version loads, so a malformed definition
    fails at start-up rather than at the first request. ``kind`` is the kind the definition must declare:
    a model-backed kind that compiles to an IL6 cutoff (``app.ml.model_version``) decides through this
    same code, so censored results are placed exactly as for a rule set.
    """

    def __init__(self, definition: ClassifierDefinition, kind: str = KIND) -> None:
        if definition.kind != kind:
            raise ClassifierDefinitionError(f"{definition.ref} is not a {kind} classifier")
        self._definition = definition
        cutoff = definition.parameter(CUTOFF)
        if cutoff.unit != PG_PER_ML:
            raise ClassifierDefinitionError(f"{definition.ref}: {CUTOFF} must be given in {PG_PER_ML}")
        self.cutoff_pg_per_ml: Decimal = cutoff.as_decimal()
        specimen = definition.parameter(SPECIMEN).value
        try:
            self.required_specimen = SpecimenType(specimen)
        except ValueError:
            raise ClassifierDefinitionError(f"{definition.ref}: unknown specimen {specimen}") from None

    @property
    def definition(self) -> ClassifierDefinition:
        return self._definition

    def decide(self, measurement: IL6Measurement, specimen: Specimen) -> Decision:
        return Decision(
            measurement=measurement,
            detectable=detectability(measurement),
            eligibility=assess_eligibility(measurement, specimen, self.required_specimen),
            risk=assess_risk(measurement, specimen, self.cutoff_pg_per_ml, self.required_specimen),
        )
