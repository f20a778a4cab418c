"""FHIR in: one IL6 Observation, alone or in a Bundle with its Patient and Specimen, read into the
service's own request body; in FHIR R4B (which also reads R4), or in R5 where the client asks for it.

One set of rules reads either release: the release (``app.interop.fhir_release``) only selects the
fhir.resources models the document is validated with. What R5 adds is handled explicitly (see
``fhir_release``): a specimen that is a Group, pooled, or not the patient's own, and a Bundle carrying
issues, are refused.

The translation decides nothing and judges no number: it checks what only the FHIR form can say (the code,
the status, the value's type and unit system, the specimen's coding, an interpretation that contradicts the
value) and writes the rest into the plain request body, with the place in the FHIR document each field
came from. The plain body is then held to every rule of a plain request (``AssessmentIn``), so nothing sent
as FHIR is accepted more loosely, and each error points back into the FHIR document.

How each field is read:
- ``code``: a coding LOINC 26881-3 ("Interleukin 6 [Mass/volume] in Serum or Plasma"); other codings may
  sit beside it.
- ``status``: final, amended or corrected. An amended or corrected result is decided as a new result: only
  the plain form links a correction to the decision it supersedes.
- value: ``valueQuantity`` with a UCUM unit (system http://unitsofmeasure.org, code pg/mL, ng/L or ng/mL);
  its ``comparator`` is kept, so a below-limit result is ``comparator "<"`` with the limit as the value.
  ``dataAbsentReason`` means there is no result to decide on (``app.interop.fhir_value``).
- ``interpretation``: the laboratory's flags are not what the service judges and are not read, except that
  a flag contradicting how the value is reported (a "not detected" flag on an exact value, a "detected" or
  "high" flag on a value below a limit) is refused (``app.interop.fhir_value``).
- subject: the trial's pseudonymous subject id, the one identifier in the deployment's subject system on
  ``subject.identifier`` or on the Patient the subject references; never a Patient's logical id or another
  of its identifiers (``app.interop.fhir_subject``). The id must match the plain form's identifier
  pattern, as a plain request's subject_id must.
- site: a FHIR result carries none (site_id is null).
- assay: the code of ``method``'s coding (any system; one distinct code), or with no coding ``method.text``,
  and it must be an assay id the deciding classifier version lists (GET /v1/assays).
- specimen type: the SNOMED CT coding of the referenced Specimen's ``type`` (``SPECIMEN_TYPES``). Without a
  Specimen the result is refused: serum is never assumed, and LOINC 26881-3 covers serum or plasma. A
  reference to anything but one Specimen (R5 allows a Group of specimens) is refused, as is, in R5, a
  Specimen whose ``combined`` is "pooled" or whose ``role`` is other than the patient's own
  (``SPECIMEN_ROLE`` "p"): such a result is not one subject's.
- collected_at: ``effectiveDateTime`` (or ``effectiveInstant``), else the Specimen's
  ``collection.collectedDateTime``; a date-time with a UTC offset, as in the plain form. A partial date
  (a year, a month or a day without a time), valid in FHIR, is refused: the time is never guessed.
- reference: "Observation/<id>" when the Observation has an id, recorded with the decision.
A Bundle (collection, batch, transaction or searchset) holds exactly one Observation and only the Patient
and Specimen it references, and (R5) no ``issues``; a reference resolves to a contained resource ("#id") or
to a bundled one by its fullUrl or "Type/id". A document nested more than 64 levels deep
(``fhir_documents.MAX_DEPTH``) is refused before it is read.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhir.resources.specimen import Specimen as R5Specimen

from app.domain.errors import InvalidInput
from app.domain.specimen import SpecimenType
from app.interop.fhir_documents import (
    Located,
    Path,
    Resources,
    add_contained,
    check_depth,
    codes,
    literal_reference,
    pointer,
    raw_at,
    validate,
)
from app.interop.fhir_release import (
    R4B,
    AnyBundle,
    AnyBundleEntry,
    AnyObservation,
    AnySpecimen,
    Release,
)
from app.interop.fhir_subject import PatientInView, subject_id
from app.interop.fhir_value import check_interpretation, quantity

FHIR_JSON_MEDIA_TYPE = "application/fhir+json"
LOINC = "http://loinc.org"
IL6_LOINC = "26881-3"
SNOMED_CT = "http://snomed.info/sct"
DECIDABLE_STATUSES = frozenset({"final", "amended", "corrected"})
"""Observation.status values of a result that stands (FHIR R4B ObservationStatus); preliminary, registered,
cancelled, entered-in-error and unknown are refused. R5's ObservationStatus has the same codes."""

BUNDLE_TYPES = frozenset({"collection", "batch", "transaction", "searchset"})

SPECIMEN_TYPES: Mapping[str, SpecimenType] = {
    "119364003": SpecimenType.SERUM,
    "119361006": SpecimenType.PLASMA,
    "258580003": SpecimenType.WHOLE_BLOOD,
}
"""Specimen.type codings the service reads, in SNOMED CT (system http://snomed.info/sct). Source: SNOMED CT
International Edition, specimen hierarchy: 119364003 |Serum specimen (specimen)|, 119361006 |Plasma
specimen (specimen)|, 258580003 |Whole blood specimen (specimen)|. Any other code is refused rather than
guessed at."""

SPECIMEN_ROLE = "http://hl7.org/fhir/specimen-role"
PATIENT_SPECIMEN_ROLE = "p"
"""FHIR R5 Specimen.role (code system http://hl7.org/fhir/specimen-role): "p" Patient. The other roles (b
Blind Sample, c Calibrator, e Electronic QC, f Filler Organization Proficiency, o Operator Proficiency, q
Control specimen, r Replicate, v Verifying Calibrator) are not a subject's own specimen and are refused."""
POOLED = "pooled"
"""FHIR R5 Specimen.combined (code system http://hl7.org/fhir/specimen-combined) "pooled": several specimens
mixed, so not one subject's result. "grouped" (the specimen is in a group) is read as the one specimen."""


@dataclass(frozen=True)
class Translation:
    """A FHIR result as the service's own request body, with the place each field came from."""

    document: dict[str, Any]
    """The plain request body (the shape of ``AssessmentIn``), still to be validated as one."""
    sources: Mapping[str, Path]
    """For each pointer into ``document`` ("/il6/value"), the path in the FHIR document it came from."""
    reference: str | None
    """"Observation/<id>" when the Observation has an id."""
    root: Path = ()
    """Where the FHIR document itself sits in the request body."""

    def source_of(self, plain_pointer: str) -> Path:
        """The FHIR path a plain field (or anything inside it) came from; the document's root if none."""
        candidate = plain_pointer
        while candidate:
            if candidate in self.sources:
                return self.sources[candidate]
            candidate = candidate.rpartition("/")[0]
        return self.root


def translate(
    document: Any,
    subject_system: str,
    at: Path = (),
    in_view: PatientInView | None = None,
    release: Release = R4B,
) -> Translation:
    """Read a FHIR Observation, or a Bundle holding one, into the plain request body.

    ``subject_system`` is the identifier system of the trial's subject ids (IL6_FHIR_SUBJECT_SYSTEM). ``at``
    is where the document sits in the request body (for a CDS Hooks prefetch, say). With ``in_view`` the
    Observation must be about the patient a CDS Hooks call is about (``app.interop.fhir_subject``).
    ``release`` selects the models the document is read with (R4B, or R5 where the client asks for it).
    """
    if not isinstance(document, dict):
        raise InvalidInput(
            pointer(at), f"Send a FHIR {release.name} Observation, or a Bundle holding one (a JSON object)."
        )
    check_depth(document, at)
    resources = Resources()
    match document.get("resourceType"):
        case "Observation":
            observation: AnyObservation = validate(release.observation, document, at)
            located = Located(observation, document, at)
            leftovers: list[Located] = []
        case "Bundle":
            observation, located, leftovers = _from_bundle(document, at, resources, release)
        case _:
            raise InvalidInput(
                pointer((*at, "resourceType")), "Send an Observation, or a Bundle holding one."
            )
    add_contained(resources, located)
    translation = _read(observation, located, resources, at, subject_system, in_view)
    for leftover in leftovers:
        if leftover.path not in resources.used:
            raise InvalidInput(
                pointer(leftover.path),
                "A Bundle holds the IL6 Observation and only the Patient and Specimen it references.",
            )
    return translation


_BUNDLED = frozenset({"Observation", "Patient", "Specimen"})


def _from_bundle(
    raw: dict[str, Any], at: Path, resources: Resources, release: Release
) -> tuple[AnyObservation, Located, list[Located]]:
    """The Bundle's one Observation, and its other entries (each to be referenced by the Observation)."""
    entries = raw.get("entry")
    for index, entry in enumerate(entries if isinstance(entries, list) else ()):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if isinstance(resource, dict) and not (isinstance(kind, str) and kind in _BUNDLED):
            # Checked before fhir.resources reads the Bundle: it fails on a resource type it does not know.
            raise InvalidInput(
                pointer((*at, "entry", index, "resource", "resourceType")),
                "A Bundle holds the IL6 Observation and only the Patient and Specimen it references.",
            )
    bundle: AnyBundle = validate(release.bundle, raw, at)
    if bundle.type not in BUNDLE_TYPES:
        raise InvalidInput(
            pointer((*at, "type")), "The Bundle's type must be collection, batch, transaction or searchset."
        )
    if raw.get("issues") is not None:  # R5 only: R4B has no Bundle.issues, and refuses it as unknown
        raise InvalidInput(
            pointer((*at, "issues")),
            "The Bundle carries issues (Bundle.issues): its sender found problems with it, so it is not "
            "read. Send it without issues once they are resolved.",
        )
    observations: list[tuple[AnyObservation, Located]] = []
    others: list[Located] = []
    bundled: Sequence[AnyBundleEntry] = bundle.entry or ()
    for index, entry in enumerate(bundled):
        path = (*at, "entry", index, "resource")
        if entry.resource is None:
            raise InvalidInput(pointer((*at, "entry", index)), "Every entry must hold a resource.")
        located = Located(entry.resource, raw["entry"][index]["resource"], path)
        if isinstance(entry.resource, AnyObservation):
            observations.append((entry.resource, located))
            continue
        keys = {f"{entry.resource.get_resource_type()}/{entry.resource.id}"} if entry.resource.id else set()
        if entry.fullUrl:
            keys.add(entry.fullUrl)
        resources.add(frozenset(keys), located)
        add_contained(resources, located)
        others.append(located)
    if len(observations) != 1:
        raise InvalidInput(
            pointer((*at, "entry")), "A Bundle must hold exactly one Observation: the IL6 result."
        )
    [(observation, located)] = observations
    return observation, located, others


def _read(
    observation: AnyObservation,
    located: Located,
    resources: Resources,
    at: Path,
    subject_system: str,
    in_view: PatientInView | None,
) -> Translation:
    raw, path = located.raw, located.path

    def here(*parts: str | int) -> Path:
        return (*path, *parts)

    if observation.status not in DECIDABLE_STATUSES:
        raise InvalidInput(
            pointer(here("status")),
            "Only a final, amended or corrected result is decided on; this status is not one of them.",
        )
    if IL6_LOINC not in codes(observation.code, LOINC):
        raise InvalidInput(
            pointer(here("code")),
            f"The result must be coded LOINC {IL6_LOINC} (Interleukin 6 [Mass/volume] in Serum or Plasma).",
        )
    il6, il6_sources = quantity(observation, raw, here)
    check_interpretation(observation, il6.get("comparator"), here)
    assay_path = here("method")
    il6["assay"] = _assay(observation, assay_path)
    subject, subject_path = subject_id(observation, resources, here, subject_system, in_view)
    specimen_resource, specimen = _specimen(observation, resources, here)
    _check_one_subjects_specimen(specimen_resource, specimen.path)
    specimen_type, type_path = _specimen_type(specimen_resource, specimen.path)
    collected_at, collected_path = _collected_at(raw, specimen, here)
    document = {
        "subject_id": subject,
        "il6": il6,
        "specimen": {"type": specimen_type.value, "collected_at": collected_at},
    }
    sources: dict[str, Path] = {
        "/subject_id": subject_path,
        "/il6": here("valueQuantity"),
        **il6_sources,
        "/il6/assay": assay_path,
        "/specimen": here("specimen"),
        "/specimen/type": type_path,
        "/specimen/collected_at": collected_path,
    }
    reference = f"Observation/{observation.id}" if observation.id else None
    return Translation(document=document, sources=sources, reference=reference, root=at)


def _assay(observation: AnyObservation, path: Path) -> str:
    method = observation.method
    if method is not None:
        ids = {coding.code for coding in method.coding or () if coding.code}
        if len(ids) == 1:
            return ids.pop()
        if len(ids) > 1:
            raise InvalidInput(pointer(path), "Name one assay: the method's codings name several.")
        if method.text:
            return method.text
    raise InvalidInput(
        pointer(path),
        "Name the assay: Observation.method with the assay id (GET /v1/assays) as a coding's code, or as "
        "its text.",
    )


_NOT_ONE_SPECIMEN = (
    "The specimen must be one Specimen, not a Group of specimens or another resource: the Specimen's own "
    "type decides whether a result counts."
)


def _specimen(
    observation: AnyObservation, resources: Resources, here: Callable[..., Path]
) -> tuple[AnySpecimen, Located]:
    """The Specimen the Observation references. In R5 Observation.specimen may also reference a Group (of
    specimens), which is refused: it has no one type and collection time."""
    reference = observation.specimen
    if reference is None or reference.reference is None:
        raise InvalidInput(
            pointer(here("specimen")),
            "Reference the Specimen (contained, or in the Bundle) with its type: the specimen decides "
            "whether a result counts (only serum does), and serum is never assumed.",
        )
    if reference.type is not None and reference.type != "Specimen":
        raise InvalidInput(pointer(here("specimen", "type")), _NOT_ONE_SPECIMEN)
    located = resources.resolve(reference.reference)
    named = literal_reference(reference.reference)
    if (located is not None and not isinstance(located.resource, AnySpecimen)) or (
        located is None and named is not None and named[0] != "Specimen"
    ):
        raise InvalidInput(pointer(here("specimen", "reference")), _NOT_ONE_SPECIMEN)
    if located is None or not isinstance(located.resource, AnySpecimen):
        raise InvalidInput(
            pointer(here("specimen", "reference")),
            "The referenced Specimen is not in the document: contain it, or put it in the Bundle.",
        )
    return located.resource, located


def _check_one_subjects_specimen(resource: AnySpecimen, at: Path) -> None:
    """R5's Specimen.combined and Specimen.role, which R4B has not: a pooled specimen, or one that is not the
    patient's own (a control, a calibrator, ...), is not one subject's result."""
    if not isinstance(resource, R5Specimen):
        return
    if resource.combined == POOLED:
        raise InvalidInput(
            pointer((*at, "combined")),
            "The Specimen is pooled (Specimen.combined): a result on pooled specimens is not one subject's.",
        )
    for index, role in enumerate(resource.role or ()):
        if set(codes(role, SPECIMEN_ROLE)) != {PATIENT_SPECIMEN_ROLE}:
            raise InvalidInput(
                pointer((*at, "role", index)),
                f"The Specimen's role must be the patient's own specimen ({SPECIMEN_ROLE} code "
                f"'{PATIENT_SPECIMEN_ROLE}'): a control, calibrator, replicate or proficiency specimen is "
                "not a subject's result.",
            )


def _specimen_type(resource: AnySpecimen, at: Path) -> tuple[SpecimenType, Path]:
    path = (*at, "type")
    kinds = {SPECIMEN_TYPES[code] for code in codes(resource.type, SNOMED_CT) if code in SPECIMEN_TYPES}
    if len(kinds) == 1:
        return kinds.pop(), path
    accepted = ", ".join(f"{code} ({kind.value})" for code, kind in SPECIMEN_TYPES.items())
    if kinds:
        raise InvalidInput(pointer(path), "The Specimen's type codings disagree.")
    raise InvalidInput(pointer(path), f"The Specimen's type must be coded in SNOMED CT, one of: {accepted}.")


def _collected_at(raw: dict[str, Any], specimen: Located, here: Callable[..., Path]) -> tuple[Any, Path]:
    for name in ("effectiveDateTime", "effectiveInstant"):
        if raw.get(name) is not None:
            return _with_time(raw[name], here(name)), here(name)
    collected = raw_at(specimen.raw, "collection", "collectedDateTime")
    if collected is not None:
        path = (*specimen.path, "collection", "collectedDateTime")
        return _with_time(collected, path), path
    raise InvalidInput(
        pointer(here("effectiveDateTime")),
        "Give the collection time: effectiveDateTime with a UTC offset, or the Specimen's "
        "collection.collectedDateTime.",
    )


def _with_time(value: Any, path: Path) -> Any:
    """A FHIR dateTime that is not partial: a year, a month or a day alone is refused, never made a time."""
    if isinstance(value, str) and "T" not in value:
        raise InvalidInput(
            pointer(path),
            "The collection time is a partial date (a year, a month or a day without a time): give the "
            "date and time with a UTC offset, e.g. 2026-11-20T09:30:00Z.",
        )
    return value
