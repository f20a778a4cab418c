"""The IL6 value of a FHIR Observation (R4B or R5): its valueQuantity read into the plain request's ``il6``
block, and the laboratory's interpretation flags checked against it.

- value: ``valueQuantity`` with a UCUM unit (system http://unitsofmeasure.org); its ``comparator`` is kept,
  so a below-limit result is ``comparator "<"`` with the limit as the value; the number is taken as parsed
  from the body (exact) and held to the plain form's number rules afterwards (which refuse R5's comparator
  "ad"). ``dataAbsentReason``, or a value of another type (R5 adds valueAttachment and valueReference),
  means there is no result to decide on.
- ``interpretation``: the flags are not what the service judges and are not read, except that a flag
  contradicting how the value is reported is refused, both ways: a "below the limit" flag
  (``BELOW_LIMIT_INTERPRETATIONS``) on a value not reported as below a limit (comparator "<" or "<="), and a
  "detected" or "high" flag (``DETECTED_INTERPRETATIONS``) on a value reported as below a limit. The rule
  needs no number: an exact value, or one reported as above a limit, says a concentration was measured;
  "not detected" says none was. Whether a flagged "<x" is below the assay's limit of detection is the
  classifier's judgement, not this check's. Flags are read in HL7 v3 ObservationInterpretation and in HL7
  v2 table 0078 (``INTERPRETATION_SYSTEMS``), which share these codes.
"""

from collections.abc import Callable
from typing import Any

from app.domain.errors import InvalidInput
from app.domain.il6 import UNITS
from app.interop.fhir_documents import Path, codes, pointer, raw_at
from app.interop.fhir_release import AnyObservation

UCUM = "http://unitsofmeasure.org"
OBSERVATION_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V2_ABNORMAL_FLAGS = "http://terminology.hl7.org/CodeSystem/v2-0078"
INTERPRETATION_SYSTEMS = (OBSERVATION_INTERPRETATION, V2_ABNORMAL_FLAGS)

BELOW_LIMIT_INTERPRETATIONS = frozenset({"ND", "NEG", "<"})
"""Interpretation codes (HL7 v3 ObservationInterpretation, or HL7 v2 table 0078) that say the analyte was not
found or was below what the method measures: ND "Not detected", NEG "Negative", "<" "Off scale low". Such a
result is sent as a value below a limit (comparator "<" or "<=")."""

DETECTED_INTERPRETATIONS = frozenset({"DET", "POS", "H", "HH"})
"""Interpretation codes (HL7 v3 ObservationInterpretation, or HL7 v2 table 0078) that say the analyte was
found, or found above the reference range: DET "Detected", POS "Positive", H "High", HH "Critical high".
Such a result was measured, so it is not sent as a value below a limit. Other flags (A "Abnormal", say) do
not say which way and are not read."""

BELOW_LIMIT_COMPARATORS = frozenset({"<", "<="})


def quantity(
    observation: AnyObservation, raw: dict[str, Any], here: Callable[..., Path]
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The plain ``il6`` block from valueQuantity (value and comparator as sent), without the assay."""
    others = sorted(key for key in raw if key.startswith("value") and key != "valueQuantity")
    if others:
        raise InvalidInput(
            pointer(here("valueQuantity")),
            "An IL6 result is a valueQuantity; a result of another type cannot be decided on.",
        )
    if observation.dataAbsentReason is not None:
        if observation.valueQuantity is not None:
            raise InvalidInput(
                pointer(here("dataAbsentReason")),
                "A result with a value has no dataAbsentReason (FHIR invariant obs-6).",
            )
        raise InvalidInput(
            pointer(here("dataAbsentReason")),
            "The result has no value (dataAbsentReason), so there is nothing to decide on. A result below "
            "the limit of detection is a valueQuantity with comparator '<' and the limit as its value.",
        )
    quantity = observation.valueQuantity
    if quantity is None:
        raise InvalidInput(pointer(here("valueQuantity")), "The result has no valueQuantity.")
    if quantity.system != UCUM:
        raise InvalidInput(
            pointer(here("valueQuantity", "system")), f"The unit must be a UCUM code (system {UCUM})."
        )
    if quantity.code is None:
        raise InvalidInput(pointer(here("valueQuantity", "code")), "Give the unit as a UCUM code.")
    _check_displayed_unit(quantity.unit, quantity.code, here)
    il6: dict[str, Any] = {"unit": quantity.code}
    value = raw_at(raw, "valueQuantity", "value")
    if value is not None:
        il6["value"] = value  # as parsed from the body (exact), held to the plain form's number rules
    comparator = raw_at(raw, "valueQuantity", "comparator")
    if comparator is not None:
        il6["comparator"] = comparator
    sources = {
        "/il6/value": here("valueQuantity", "value"),
        "/il6/unit": here("valueQuantity", "code"),
        "/il6/comparator": here("valueQuantity", "comparator"),
    }
    return il6, sources


def _check_displayed_unit(shown: str | None, code: str, here: Callable[..., Path]) -> None:
    """Refuse a displayed unit (valueQuantity.unit) that names an accepted unit of another size than
    the UCUM code's: the value would be read one way and shown another (1 ng/mL is 1000 pg/mL).

    The code decides the unit; a display that names none of the accepted units ("picograms per
    millilitre"), or one of the same size in other letter case or another name (pg/ml, ng/L for pg/mL),
    is left to be shown.
    """
    named = {unit.code.casefold(): unit for unit in UNITS.values()}
    displayed = None if shown is None else named.get(shown.strip().casefold())
    coded = UNITS.get(code)
    if displayed is not None and coded is not None and displayed.pg_per_ml != coded.pg_per_ml:
        raise InvalidInput(
            pointer(here("valueQuantity", "unit")),
            f"The unit shown ({shown}) and the unit coded ({code}) are of different sizes: which one the "
            "value is in cannot be told.",
        )


def check_interpretation(observation: AnyObservation, comparator: Any, here: Callable[..., Path]) -> None:
    """Refuse an interpretation that contradicts how the value is reported (below a limit or not)."""
    flags = {
        code
        for concept in observation.interpretation or ()
        for system in INTERPRETATION_SYSTEMS
        for code in codes(concept, system)
    }
    below = comparator in BELOW_LIMIT_COMPARATORS
    if flags & BELOW_LIMIT_INTERPRETATIONS and not below:
        raise InvalidInput(
            pointer(here("interpretation")),
            "The interpretation says not detected or below the limit, but the value is not reported as "
            "below a limit (valueQuantity.comparator '<' or '<='): the two contradict each other.",
        )
    if flags & DETECTED_INTERPRETATIONS and below:
        raise InvalidInput(
            pointer(here("interpretation")),
            "The interpretation says detected, positive or high, but the value is reported as below a limit "
            "(valueQuantity.comparator '<' or '<='): the two contradict each other.",
        )
