"""Plain functions that build FHIR R4B documents and CDS Hooks calls for the tests.

A trial subject ("PIT-0042", the pseudonymous id the service records) and the EHR's id for the same patient
("ehr-1001", a Patient's logical id) are deliberately different, as is the patient's medical record number,
so a test would see one taken for the other.
"""

import uuid
from typing import Any

from app.settings import DEFAULT_FHIR_SUBJECT_SYSTEM

SUBJECT_SYSTEM = DEFAULT_FHIR_SUBJECT_SYSTEM
"""The identifier system of the trial's subject ids (IL6_FHIR_SUBJECT_SYSTEM; the default in the tests)."""
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"
"""An EHR's medical record numbers (an example OID): never the trial subject id."""
LOINC_IL6 = {
    "system": "http://loinc.org",
    "code": "26881-3",
    "display": "Interleukin 6 [Mass/volume] in Serum or Plasma",
}
SERUM = {"system": "http://snomed.info/sct", "code": "119364003", "display": "Serum specimen"}
PLASMA = {"system": "http://snomed.info/sct", "code": "119361006", "display": "Plasma specimen"}


def trial_id(value: str) -> dict[str, str]:
    """An identifier in the trial's subject system."""
    return {"system": SUBJECT_SYSTEM, "value": value}


def specimen(coding: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Specimen",
        "id": "s1",
        "type": {"coding": [coding or SERUM]},
    }
    resource.update(changes)
    return resource


def patient(
    ehr_id: str | None = "ehr-1001", subject: str | None = "PIT-0042", **changes: Any
) -> dict[str, Any]:
    """The EHR's Patient: logical id ``ehr_id``, a medical record number, and the trial subject id
    ``subject`` in the trial's system (None: no trial identifier)."""
    identifiers = [{"system": MRN_SYSTEM, "value": "MRN-778899"}]
    if subject is not None:
        identifiers.append(trial_id(subject))
    resource: dict[str, Any] = {"resourceType": "Patient", "id": ehr_id, "identifier": identifiers}
    resource.update(changes)
    return {key: value for key, value in resource.items() if value is not None}


def observation(
    *,
    subject: str | None = "PIT-0042",
    patient: str | None = "ehr-1001",
    value: Any = 1.5,
    unit: str = "pg/mL",
    comparator: str | None = "<",
    assay: str = "elecsys-il6",
    specimen_coding: dict[str, Any] | None = None,
    effective: str | None = "2026-11-20T09:30:00Z",
    **changes: Any,
) -> dict[str, Any]:
    """An IL6 Observation with a contained serum Specimen, about the trial subject ``subject`` (given as
    subject.identifier in the trial's system) who is the EHR's "Patient/<patient>" (subject.reference); with
    both None it has no subject. ``changes`` replace top-level elements (None removes one)."""
    quantity: dict[str, Any] = {
        "value": value,
        "unit": unit,
        "system": "http://unitsofmeasure.org",
        "code": unit,
    }
    if comparator is not None:
        quantity["comparator"] = comparator
    named: dict[str, Any] = {}
    if patient is not None:
        named["reference"] = f"Patient/{patient}"
    if subject is not None:
        named["identifier"] = trial_id(subject)
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "il6-result-1",
        "contained": [specimen(specimen_coding)],
        "status": "final",
        "code": {"coding": [LOINC_IL6]},
        "subject": named or None,
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


def hook_call(
    prefetched: Any,
    *,
    patient_id: str = "ehr-1001",
    subject: str | None = "PIT-0042",
    prefetched_patient: Any = None,
    **changes: Any,
) -> dict[str, Any]:
    """A CDS Hooks patient-view call about the EHR's patient ``patient_id``, with ``prefetched`` as
    prefetch.il6 (``...`` leaves the prefetch out) and, as prefetch.patient, that Patient carrying the trial
    subject id ``subject`` (or ``prefetched_patient`` when given; ``...`` leaves the key out)."""
    call: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
    }
    if prefetched is not ...:
        call["prefetch"] = {"il6": prefetched}
        if prefetched_patient is not ...:
            call["prefetch"]["patient"] = (
                patient(patient_id, subject) if prefetched_patient is None else prefetched_patient
            )
    call.update(changes)
    return call
