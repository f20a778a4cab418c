"""FHIR out: a recorded decision as a Bundle (type collection) of a GuidanceResponse, the Parameters it
outputs and a RiskAssessment; in FHIR R4B, or in R5 where the client asks for it. The resources are the same
in either release (every element written here is named and shaped alike in both); the release only selects
the fhir.resources models that validate them (``app.interop.fhir_release``).

- GuidanceResponse: status success; ``moduleCanonical`` the deciding classifier version as a canonical
  under ``CANONICAL_BASE`` ("<base>/classifiers/<name>|<version>"); ``occurrenceDateTime`` when the decision
  was recorded; ``outputParameters`` a Parameters resource in the Bundle carrying the eligibility status,
  the risk group, their reason codes (``REASON_SYSTEM``), the IL6 value in pg/mL, and detectability.
- RiskAssessment: status final; ``method`` names the classifier version; ``basis`` the Observation the
  decision was made on when it came as FHIR (the "Observation/<id>" in the decision's reference, as a FHIR
  result or a CDS Hooks call records it); ``prediction[0].qualitativeRisk`` the IL6 risk group in the
  service's own code system (``RISK_GROUP_SYSTEM``: the group is the classifier's, not a probability, so
  HL7's risk-probability codes are not used); with no group, no prediction and a note saying why.
- Both name the subject by its identifier (the trial's pseudonymous subject id, no Patient resource is
  assumed) and carry the assessment id as their identifier (``urn:uuid:<id>``, system urn:ietf:rfc:3986).
Resource ids and fullUrls are derived from the assessment id, so the same decision always reads the same.
"""

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.interop.fhir_release import R4B, AnyBundle, AnyResource, Release
from app.interop.fhir_value import UCUM

CANONICAL_BASE = "https://il6-eligibility"
"""The base of the canonical URLs and code systems this service defines. A name under the service's own
name, not a server anyone runs: nothing is fetched from it. Replace it with a URL the sponsor owns before
the resources leave the trial."""

CLASSIFIER_BASE = f"{CANONICAL_BASE}/classifiers"
REASON_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/reason-code"
ELIGIBILITY_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/eligibility-status"
RISK_GROUP_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/risk-group"
UUID_SYSTEM = "urn:ietf:rfc:3986"
PG_PER_ML = "pg/mL"


def module_canonical(name: str, version: str) -> str:
    """The canonical of a classifier version: '<base>/classifiers/<name>|<version>'."""
    return f"{CLASSIFIER_BASE}/{name}|{version}"


def _urn(assessment_id: uuid.UUID, resource_type: str) -> str:
    return f"urn:uuid:{uuid.uuid5(assessment_id, resource_type)}"


def _observation(reference: str | None) -> str | None:
    """The "Observation/<id>" a decision's reference names: the whole reference of a FHIR result, the part
    after the hookInstance of a CDS Hooks call's ("hookInstance:<uuid> Observation/<id>")."""
    parts = [] if reference is None else reference.split(" ")
    return next((part for part in parts if part.startswith("Observation/")), None)


def _reasons(reasons: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [{"system": REASON_SYSTEM, "code": r["code"], "display": r["message"]} for r in reasons]


def _parameters(decision: Mapping[str, Any]) -> list[dict[str, Any]]:
    eligibility, risk, il6 = decision["eligibility"], decision["risk"], decision["il6"]
    quantity: dict[str, Any] = {
        "value": Decimal(il6["pg_per_ml"]),
        "unit": PG_PER_ML,
        "system": UCUM,
        "code": PG_PER_ML,
    }
    if il6["comparator"] is not None:
        quantity["comparator"] = il6["comparator"]
    parameters: list[dict[str, Any]] = [
        {"name": "eligibility", "valueCoding": {"system": ELIGIBILITY_SYSTEM, "code": eligibility["status"]}},
        *({"name": "eligibility-reason", "valueCoding": c} for c in _reasons(eligibility["reasons"])),
    ]
    if risk["group"] is not None:
        parameters.append(
            {"name": "risk-group", "valueCoding": {"system": RISK_GROUP_SYSTEM, "code": risk["group"]}}
        )
    parameters += [
        *({"name": "risk-reason", "valueCoding": c} for c in _reasons(risk["reasons"])),
        {"name": "il6", "valueQuantity": quantity},
    ]
    if il6["detectable"] is not None:
        parameters.append({"name": "detectable", "valueBoolean": il6["detectable"]})
    return parameters


def decision_bundle(
    *,
    assessment_id: uuid.UUID,
    subject_id: str,
    recorded_at: datetime,
    decision: Mapping[str, Any],
    reference: str | None,
    release: Release = R4B,
) -> AnyBundle:
    """A recorded decision (its stored decision document) as a FHIR collection Bundle in ``release``."""
    classifier = decision["classifier"]
    ref = f"{classifier['name']}@{classifier['version']}"
    identifier = [{"system": UUID_SYSTEM, "value": f"urn:uuid:{assessment_id}"}]
    subject = {"type": "Patient", "identifier": {"value": subject_id}}
    urls = {kind: _urn(assessment_id, kind) for kind in ("GuidanceResponse", "Parameters", "RiskAssessment")}
    parameters = release.parameters.model_validate(
        {
            "resourceType": "Parameters",
            "id": urls["Parameters"].removeprefix("urn:uuid:"),
            "parameter": _parameters(decision),
        }
    )
    guidance = release.guidance_response.model_validate(
        {
            "resourceType": "GuidanceResponse",
            "id": urls["GuidanceResponse"].removeprefix("urn:uuid:"),
            "identifier": identifier,
            "moduleCanonical": module_canonical(classifier["name"], classifier["version"]),
            "status": "success",
            "subject": subject,
            "occurrenceDateTime": recorded_at,
            "outputParameters": {"reference": urls["Parameters"], "type": "Parameters"},
        }
    )
    risk = decision["risk"]
    assessment: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": urls["RiskAssessment"].removeprefix("urn:uuid:"),
        "identifier": identifier,
        "status": "final",
        "method": {"coding": [{"system": CLASSIFIER_BASE, "code": ref}], "text": ref},
        "subject": subject,
        "occurrenceDateTime": recorded_at,
    }
    observation = _observation(reference)
    if observation is not None:
        assessment["basis"] = [{"reference": observation}]
    rationale = " ".join(reason["message"] for reason in risk["reasons"])
    if risk["group"] is None:
        assessment["note"] = [{"text": f"No IL6 risk group. {rationale}".strip()}]
    else:
        assessment["prediction"] = [
            {
                "qualitativeRisk": {
                    "coding": [{"system": RISK_GROUP_SYSTEM, "code": risk["group"]}],
                    "text": f"IL6 risk group {risk['group']}",
                },
                "rationale": rationale,
            }
        ]
    resources: list[tuple[str, AnyResource]] = [
        (urls["GuidanceResponse"], guidance),
        (urls["Parameters"], parameters),
        (urls["RiskAssessment"], release.risk_assessment.model_validate(assessment)),
    ]
    return release.bundle.model_validate(
        {
            "resourceType": "Bundle",
            "identifier": identifier[0],
            "type": "collection",
            "timestamp": recorded_at,
            "entry": [{"fullUrl": url, "resource": resource} for url, resource in resources],
        }
    )
