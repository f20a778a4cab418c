"""Finding things in a FHIR R4B document: resources read by fhir.resources with their errors placed in the
request body, references resolved to contained or bundled resources, and JSON Pointers to each element.

fhir.resources' own error messages may quote what was sent; here every error keeps its place and pydantic's
type, and a message is kept only when it is one of pydantic's, which name what is expected, never the input.
"""

from dataclasses import dataclass, field
from typing import Any, TypeVar

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.domain.errors import InvalidInput

Path = tuple[str | int, ...]
"""A place in a JSON document, as the parts of its JSON Pointer."""


def pointer(path: Path) -> str:
    """The JSON Pointer (RFC 6901) of a path."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


R = TypeVar("R", bound=Resource)


@dataclass(frozen=True)
class Located:
    """A resource found in the document: its model, its JSON as sent, and its place."""

    resource: Resource
    raw: dict[str, Any]
    path: Path


@dataclass
class Resources:
    """The resources a reference may name: contained ones by "#id", bundled ones by fullUrl or Type/id
    (a relative "Type/id" also names an entry whose absolute fullUrl ends with it)."""

    entries: list[tuple[frozenset[str], Located]] = field(default_factory=list)
    used: set[Path] = field(default_factory=set)

    def add(self, keys: frozenset[str], located: Located) -> None:
        self.entries.append((keys, located))

    def resolve(self, reference: str) -> Located | None:
        relative = "://" not in reference and not reference.startswith(("#", "urn:"))
        for keys, located in self.entries:
            if reference in keys or (
                relative and any("://" in key and key.endswith(f"/{reference}") for key in keys)
            ):
                self.used.add(located.path)
                return located
        return None


_PLAIN_ERROR_TYPES = frozenset(
    {
        "missing",
        "extra_forbidden",
        "list_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
        "string_type",
        "bool_type",
        "int_type",
        "int_parsing",
        "literal_error",
        "too_short",
        "too_long",
        "string_too_short",
        "string_too_long",
    }
)
"""pydantic's own error types, whose messages name what is expected, never what was sent."""

_INVALID_FHIR = "Not a valid FHIR R4B value for this element."


def _json_name(part: str | int) -> str | int:
    if part == "resource_type":
        return "resourceType"
    if isinstance(part, str) and part.endswith("__ext"):
        return "_" + part.removesuffix("__ext")
    return part


def _relocated(error: ValidationError, at: Path, title: str) -> ValidationError:
    """fhir.resources' errors placed in the request body, with messages that never repeat the input."""
    details: list[InitErrorDetails] = []
    for detail in error.errors(include_input=False, include_url=False):
        kind = str(detail["type"])
        if kind in _PLAIN_ERROR_TYPES:
            error_type = PydanticCustomError(kind, detail["msg"])
        elif kind.endswith(".missing"):  # fhir.resources' own "required element" check
            error_type = PydanticCustomError("missing", "Field required")
        else:
            error_type = PydanticCustomError("fhir_invalid", _INVALID_FHIR)
        loc = tuple(_json_name(part) for part in detail["loc"] if part != "root")
        details.append(InitErrorDetails(type=error_type, loc=(*at, *loc), input=None))
    return ValidationError.from_exception_data(title, details)


def validate(model: type[R], raw: Any, at: Path) -> R:
    """A resource read by fhir.resources; its errors located at ``at`` in the request body."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise _relocated(error, at, model.__name__) from None
    except (KeyError, TypeError, ValueError, AttributeError):
        # fhir.resources fails this way on a contained resource of a type it does not know.
        raise InvalidInput(pointer(at), "Not a valid FHIR R4B resource.") from None


def raw_at(raw: dict[str, Any], *path: str | int) -> Any:
    """The JSON as sent at a path below a resource already validated (so every step exists or is absent)."""
    value: Any = raw
    for part in path:
        if isinstance(value, dict) and isinstance(part, str):
            value = value.get(part)
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return None
    return value


def codes(concept: CodeableConcept | None, system: str) -> list[str]:
    """The codes of a concept's codings in one code system."""
    if concept is None:
        return []
    return [coding.code for coding in concept.coding or () if coding.system == system and coding.code]


def add_contained(resources: Resources, located: Located) -> None:
    contained = getattr(located.resource, "contained", None) or []
    for index, resource in enumerate(contained):
        if resource.id:
            raw = located.raw["contained"][index]
            resources.add(
                frozenset({f"#{resource.id}"}), Located(resource, raw, (*located.path, "contained", index))
            )
