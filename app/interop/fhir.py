"""FHIR R4B in: one IL6 Observation, alone or in a Bundle with its Patient and Specimen, read into the
service's own request body.

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
  Specimen the result is refused: serum is never assumed, and LOINC 26881-3 covers serum or plasma.
- collected_at: ``effectiveDateTime`` (or ``effectiveInstant``), else the Specimen's
  ``collection.collectedDateTime``; a date-time with a UTC offset, as in the plain form. A partial date
  (a year, a month or a day without a time), valid in FHIR, is refused: the time is never guessed.
- reference: "Observation/<id>" when the Observation has an id, recorded with the decision.
A Bundle (collection, batch, transaction or searchset) holds exactly one Observation and only the Patient
and Specimen it references; a reference resolves to a contained resource ("#id") or to a bundled one by its
fullUrl or "Type/id". A document nested more than 64 levels deep (``fhir_documents.MAX_DEPTH``) is refused
before it is read.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.specimen import Specimen

from app.domain.errors import InvalidInput
from app.domain.specimen import SpecimenType
from app.interop.fhir_documents import (
    Located,
    Path,
    Resources,
    add_contained,
    check_depth,
    codes,
    pointer,
    raw_at,
    validate,
)
from app.interop.fhir_subject import PatientInView, subject_id
from app.interop.fhir_value import check_interpretation, quantity

FHIR_JSON_MEDIA_TYPE = "application/fhir+json"
LOINC = "http://loinc.org"
IL6_LOINC = "26881-3"
SNOMED_CT = "http://snomed.info/sct"
DECIDABLE_STATUSES = frozenset({"final", "amended", "corrected"})
"""Observation.status values of a result that stands (FHIR R4B ObservationStatus); preliminary, registered,
cancelled, entered-in-error and unknown are refused."""

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
    document: Any, subject_system: str, at: Path = (), in_view: PatientInView | None = None
) -> Translation:
    """Read a FHIR R4B Observation, or a Bundle holding one, into the plain request body.

    ``subject_system`` is the identifier system of the trial's subject ids (IL6_FHIR_SUBJECT_SYSTEM). ``at``
    is where the document sits in the request body (for a CDS Hooks prefetch, say). With ``in_view`` the
    Observation must be about the patient a CDS Hooks call is about (``app.interop.fhir_subject``).
    """
    if not isinstance(document, dict):
        raise InvalidInput(
            pointer(at), "Send a FHIR R4B Observation, or a Bundle holding one (a JSON object)."
        )
    check_depth(document, at)
    resources = Resources()
    match document.get("resourceType"):
        case "Observation":
            observation = validate(Observation, document, at)
            located = Located(observation, document, at)
            leftovers: list[Located] = []
        case "Bundle":
            observation, located, leftovers = _from_bundle(document, at, resources)
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
    raw: dict[str, Any], at: Path, resources: Resources
) -> tuple[Observation, Located, list[Located]]:
    """The Bundle's one Observation, and its other entries (each to be referenced by the Observation)."""
    entries = raw.get("entry")
    for index, entry in enumerate(entries if isinstance(entries, list) else ()):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") not in _BUNDLED:
            # Checked before fhir.resources reads the Bundle: it fails on a resource type it does not know.
            raise InvalidInput(
                pointer((*at, "entry", index, "resource", "resourceType")),
                "A Bundle holds the IL6 Observation and only the Patient and Specimen it references.",
            )
    bundle = validate(Bundle, raw, at)
    if bundle.type not in BUNDLE_TYPES:
        raise InvalidInput(
            pointer((*at, "type")), "The Bundle's type must be collection, batch, transaction or searchset."
        )
    observations: list[tuple[Observation, Located]] = []
    others: list[Located] = []
    for index, entry in enumerate(bundle.entry or ()):
        path = (*at, "entry", index, "resource")
        if entry.resource is None:
            raise InvalidInput(pointer((*at, "entry", index)), "Every entry must hold a resource.")
        located = Located(entry.resource, raw["entry"][index]["resource"], path)
        if isinstance(entry.resource, Observation):
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
    observation: Observation,
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


def _assay(observation: Observation, path: Path) -> str:
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


def _specimen(
    observation: Observation, resources: Resources, here: Callable[..., Path]
) -> tuple[Specimen, Located]:
    reference = observation.specimen
    if reference is None or reference.reference is None:
        raise InvalidInput(
            pointer(here("specimen")),
            "Reference the Specimen (contained, or in the Bundle) with its type: the specimen decides "
            "whether a result counts (only serum does), and serum is never assumed.",
        )
    located = resources.resolve(reference.reference)
    if located is None or not isinstance(located.resource, Specimen):
        raise InvalidInput(
            pointer(here("specimen", "reference")),
            "The referenced Specimen is not in the document: contain it, or put it in the Bundle.",
        )
    return located.resource, located


def _specimen_type(resource: Specimen, at: Path) -> tuple[SpecimenType, Path]:
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
