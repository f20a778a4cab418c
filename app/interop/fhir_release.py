"""The FHIR release a document is read or written in: R4B by default, R5 where the client asks for it.

A release only selects fhir.resources' model classes: R4B's (``fhir.resources.R4B``) or R5's (the package's
top level, FHIR 5.0.0). The rules that read an IL6 result (``app.interop.fhir``) and write a decision
(``app.interop.fhir_decision``) are one set, applied to either release's models. The elements they read are
named and shaped alike in R4B and R5, except where R5 adds something, which the rules handle explicitly:
- ``Observation.specimen`` may reference a ``Group`` of specimens in R5 (only a Specimen in R4B): refused
  in either release, as the rules read one Specimen's type;
- ``Specimen.combined`` and ``Specimen.role`` are new in R5: a pooled specimen, or one whose role is not the
  patient's own (a control, calibrator, replicate, ...), is not one subject's result and is refused;
- ``Bundle.issues`` is new in R5: a Bundle whose sender recorded issues with it is refused;
- ``Observation.valueAttachment`` and ``valueReference`` are new in R5 and, as every value other than
  ``valueQuantity``, refused; ``Quantity.comparator`` "ad" is new in R5 and refused by the plain form's
  rules, as any comparator other than <, <=, >= and > is.
"""

from dataclasses import dataclass
from typing import Literal

from fhir.resources.bundle import Bundle as R5Bundle
from fhir.resources.bundle import BundleEntry as R5BundleEntry
from fhir.resources.codeableconcept import CodeableConcept as R5CodeableConcept
from fhir.resources.guidanceresponse import GuidanceResponse as R5GuidanceResponse
from fhir.resources.identifier import Identifier as R5Identifier
from fhir.resources.observation import Observation as R5Observation
from fhir.resources.parameters import Parameters as R5Parameters
from fhir.resources.patient import Patient as R5Patient
from fhir.resources.R4B.bundle import Bundle as R4BBundle
from fhir.resources.R4B.bundle import BundleEntry as R4BBundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept as R4BCodeableConcept
from fhir.resources.R4B.guidanceresponse import GuidanceResponse as R4BGuidanceResponse
from fhir.resources.R4B.identifier import Identifier as R4BIdentifier
from fhir.resources.R4B.observation import Observation as R4BObservation
from fhir.resources.R4B.parameters import Parameters as R4BParameters
from fhir.resources.R4B.patient import Patient as R4BPatient
from fhir.resources.R4B.reference import Reference as R4BReference
from fhir.resources.R4B.resource import Resource as R4BResource
from fhir.resources.R4B.riskassessment import RiskAssessment as R4BRiskAssessment
from fhir.resources.R4B.specimen import Specimen as R4BSpecimen
from fhir.resources.reference import Reference as R5Reference
from fhir.resources.resource import Resource as R5Resource
from fhir.resources.riskassessment import RiskAssessment as R5RiskAssessment
from fhir.resources.specimen import Specimen as R5Specimen

AnyResource = R4BResource | R5Resource
AnyObservation = R4BObservation | R5Observation
AnySpecimen = R4BSpecimen | R5Specimen
AnyPatient = R4BPatient | R5Patient
AnyReference = R4BReference | R5Reference
AnyCodeableConcept = R4BCodeableConcept | R5CodeableConcept
AnyBundle = R4BBundle | R5Bundle
AnyBundleEntry = R4BBundleEntry | R5BundleEntry
AnyIdentifier = R4BIdentifier | R5Identifier


@dataclass(frozen=True)
class Release:
    """One FHIR release's model classes."""

    name: Literal["R4B", "R5"]
    fhir_version: str
    """Its ``fhirVersion`` media type parameter value (FHIR "Version parameter": major.minor)."""
    observation: type[R4BObservation] | type[R5Observation]
    specimen: type[R4BSpecimen] | type[R5Specimen]
    patient: type[R4BPatient] | type[R5Patient]
    bundle: type[R4BBundle] | type[R5Bundle]
    guidance_response: type[R4BGuidanceResponse] | type[R5GuidanceResponse]
    parameters: type[R4BParameters] | type[R5Parameters]
    risk_assessment: type[R4BRiskAssessment] | type[R5RiskAssessment]


R4B = Release(
    name="R4B",
    fhir_version="4.3",
    observation=R4BObservation,
    specimen=R4BSpecimen,
    patient=R4BPatient,
    bundle=R4BBundle,
    guidance_response=R4BGuidanceResponse,
    parameters=R4BParameters,
    risk_assessment=R4BRiskAssessment,
)
"""FHIR R4B (4.3.0), which also reads FHIR R4 (4.0.1): the elements read here are alike in both."""

R5 = Release(
    name="R5",
    fhir_version="5.0",
    observation=R5Observation,
    specimen=R5Specimen,
    patient=R5Patient,
    bundle=R5Bundle,
    guidance_response=R5GuidanceResponse,
    parameters=R5Parameters,
    risk_assessment=R5RiskAssessment,
)
"""FHIR R5 (5.0.0)."""
