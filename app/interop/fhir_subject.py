"""Who a FHIR IL6 result is about: the trial's pseudonymous subject id, never an EHR's id or an MRN.

The subject id is the value of the one identifier in the deployment's subject system (``subject_system``,
the setting IL6_FHIR_SUBJECT_SYSTEM) found on ``Observation.subject.identifier`` or on the Patient the
subject references: contained, bundled, or, in a CDS Hooks call, the Patient the client prefetched. A
Patient's logical id ("Patient/ehr-1001") is the EHR's name for its record, and its other identifiers (a
medical record number, say) are not the trial's: neither is ever taken for the subject id. Refused (422):
- no identifier in the subject system, or several on one Patient;
- identifiers in the subject system that disagree (on subject.identifier and on the Patient);
- a subject that is not a Patient (a Group, a Device, ...), or a contained reference that names nothing.

In a CDS Hooks call the patient in view is given by the call's context (``context.patientId``, a logical id
on the client's FHIR server) and the Observation must provably be about that patient: its
``subject.reference``, relative or absolute, with or without a version ("Patient/<id>",
"https://ehr.example/fhir/Patient/<id>/_history/3"), must name that logical id. A subject named only by an
identifier, by a contained Patient, or not at all cannot be proven to be the patient in view and is refused:
recording one patient's result under another is the error this check exists to prevent.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.domain.errors import InvalidInput
from app.interop.fhir_documents import Path, Resources, literal_reference, pointer
from app.interop.fhir_release import AnyIdentifier, AnyObservation, AnyPatient, AnyReference


@dataclass(frozen=True)
class PatientInView:
    """The patient a CDS Hooks call is about: its logical id, from the call's context, and the Patient the
    client prefetched (already checked to carry that id)."""

    patient_id: str
    patient: AnyPatient
    path: Path
    """Where the prefetched Patient sits in the call."""


def subject_id(
    observation: AnyObservation,
    resources: Resources,
    here: Callable[..., Path],
    subject_system: str,
    in_view: PatientInView | None = None,
) -> tuple[str | None, Path]:
    """The trial subject id of an Observation and where it was found (see the module's docstring).

    The id is returned as sent (None if its identifier has no value): the plain request's rules for a
    subject id are applied to it afterwards, at the place returned.
    """
    subject = observation.subject
    if subject is None:
        raise InvalidInput(
            pointer(here("subject")),
            "Name the subject: Observation.subject"
            + (", referencing the patient in context." if in_view else "."),
        )
    if subject.type is not None and subject.type != "Patient":
        raise InvalidInput(pointer(here("subject", "type")), "The subject must be a Patient.")
    patients = _referenced_patients(subject, resources, here)
    if in_view is not None:
        _check_in_view(subject, here, in_view)
        patients = [(in_view.patient, in_view.path), *patients]
        missing_at = (*in_view.path, "identifier")
    else:
        missing_at = here("subject")
    return _trial_id(subject, patients, here, subject_system, missing_at)


def _referenced_patients(
    subject: AnyReference, resources: Resources, here: Callable[..., Path]
) -> list[tuple[AnyPatient, Path]]:
    """The contained or bundled Patient the subject references, if it is in the document."""
    if subject.reference is None:
        return []
    target = resources.resolve(subject.reference)  # a bundled Patient the subject names counts as used
    if target is not None:
        if not isinstance(target.resource, AnyPatient):
            raise InvalidInput(pointer(here("subject", "reference")), "The subject must be a Patient.")
        return [(target.resource, target.path)]
    named = literal_reference(subject.reference)
    if named is not None and named[0] != "Patient":
        raise InvalidInput(pointer(here("subject", "reference")), "The subject must be a Patient.")
    if subject.reference.startswith("#"):
        raise InvalidInput(
            pointer(here("subject", "reference")),
            "The subject references a contained resource that is absent.",
        )
    return []  # a Patient on the EHR's server: its id is not the trial's, and its identifiers are not here


def _check_in_view(subject: AnyReference, here: Callable[..., Path], in_view: PatientInView) -> None:
    """The subject must reference the patient in context by its logical id."""
    named = None if subject.reference is None else literal_reference(subject.reference)
    if named is None:
        raise InvalidInput(
            pointer(here("subject") if subject.reference is None else here("subject", "reference")),
            "The Observation must reference the patient in context (subject.reference "
            "'Patient/<context.patientId>'): a subject named otherwise cannot be proven to be that patient.",
        )
    if named != ("Patient", in_view.patient_id):
        raise InvalidInput(
            pointer(here("subject", "reference")),
            "The Observation is about another patient than the one in context.",
        )


def _trial_id(
    subject: AnyReference,
    patients: Sequence[tuple[AnyPatient, Path]],
    here: Callable[..., Path],
    system: str,
    missing_at: Path,
) -> tuple[str | None, Path]:
    found: list[tuple[str | None, Path]] = []
    if subject.identifier is not None and subject.identifier.system == system:
        found.append((subject.identifier.value, here("subject", "identifier", "value")))
    for patient, path in patients:
        identifiers: Sequence[AnyIdentifier] = patient.identifier or ()
        mine = [
            (index, identifier.value)
            for index, identifier in enumerate(identifiers)
            if identifier.system == system
        ]
        if len(mine) > 1:
            raise InvalidInput(
                pointer((*path, "identifier")),
                f"The Patient has several identifiers in the trial's subject system ({system}); it must "
                "have exactly one: the trial subject id.",
            )
        found += [(value, (*path, "identifier", index, "value")) for index, value in mine]
    if not found:
        raise InvalidInput(
            pointer(missing_at),
            f"No trial subject id: give it as an identifier with system '{system}', in subject.identifier "
            "or on the Patient the subject references. A Patient's id and its other identifiers (an MRN, "
            "say) are never taken for the trial subject id.",
        )
    if len({value for value, _ in found}) > 1:
        raise InvalidInput(
            pointer(found[-1][1]),
            f"The identifiers in the trial's subject system ({system}) disagree (on subject.identifier and "
            "the Patient): they name different trial subjects.",
        )
    return found[0]
