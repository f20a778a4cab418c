"""Plain functions that build FHIR R4B documents and CDS Hooks calls for the tests."""

import uuid
from typing import Any

LOINC_IL6 = {
    "system": "http://loinc.org",
    "code": "26881-3",
    "display": "Interleukin 6 [Mass/volume] in Serum or Plasma",
}
SERUM = {"system": "http://snomed.info/sct", "code": "119364003", "display": "Serum specimen"}
PLASMA = {"system": "http://snomed.info/sct", "code": "119361006", "display": "Plasma specimen"}


def specimen(coding: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Specimen",
        "id": "s1",
        "type": {"coding": [coding or SERUM]},
    }
    resource.update(changes)
    return resource


def observation(
    *,
    subject: str | None = "PIT-0042",
    value: Any = 1.5,
    unit: str = "pg/mL",
    comparator: str | None = "<",
    assay: str = "elecsys-il6",
    specimen_coding: dict[str, Any] | None = None,
    effective: str | None = "2026-11-20T09:30:00Z",
    **changes: Any,
) -> dict[str, Any]:
    """An IL6 Observation of ``subject`` (None: none) with a contained serum Specimen; ``changes`` replace
    top-level elements (None removes one)."""
    quantity: dict[str, Any] = {
        "value": value,
        "unit": unit,
        "system": "http://unitsofmeasure.org",
        "code": unit,
    }
    if comparator is not None:
        quantity["comparator"] = comparator
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "il6-result-1",
        "contained": [specimen(specimen_coding)],
        "status": "final",
        "code": {"coding": [LOINC_IL6]},
        "subject": None if subject is None else {"reference": f"Patient/{subject}"},
        "effectiveDateTime": effective,
        "valueQuantity": quantity,
        "method": {"coding": [{"code": assay}]},
        "specimen": {"reference": "#s1"},
    }
    resource.update(changes)
    return {key: value for key, value in resource.items() if value is not None}


def bundle(*resources: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    """A Bundle of the resources, each with a urn:uuid fullUrl."""
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource} for resource in resources],
    }


def hook_call(prefetched: Any, *, patient: str = "PIT-0042", **changes: Any) -> dict[str, Any]:
    """A CDS Hooks patient-view call with ``prefetched`` as prefetch.il6 (``...`` leaves prefetch out)."""
    call: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient},
    }
    if prefetched is not ...:
        call["prefetch"] = {"il6": prefetched}
    call.update(changes)
    return call
