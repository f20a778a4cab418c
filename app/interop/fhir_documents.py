"""Finding things in a FHIR document, R4B or R5 (``app.interop.fhir_release``): resources read by
fhir.resources with their errors placed in the request body, references resolved to contained or bundled
resources, and JSON Pointers to each element.

fhir.resources' own error messages may quote what was sent; here every error keeps its place and pydantic's
type, and a message is kept only when it is one of pydantic's, which name what is expected, never the input.
"""

import re
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from fhir.resources.resource import Resource as R5Resource
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.domain.errors import InvalidInput
from app.interop.fhir_release import AnyCodeableConcept, AnyResource

Path = tuple[str | int, ...]
"""A place in a JSON document, as the parts of its JSON Pointer."""


def pointer(path: Path) -> str:
    """The JSON Pointer (RFC 6901) of a path."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


R = TypeVar("R", bound=AnyResource)

MAX_DEPTH = 64
"""The deepest nesting of objects and arrays a FHIR document (or a CDS Hooks call) may have. fhir.resources
reads a document recursively and fails on one nested a few hundred levels deep; the resources read here need
about a dozen levels, so a deeper document is refused before it is read."""

_LITERAL_REFERENCE = re.compile(
    r"(?:https?://[^\s]+/)?(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9.-]{1,64})"
    r"(?P<history>/_history/[A-Za-z0-9.-]{1,64})?"
)
"""A literal reference to a resource on a FHIR server (FHIR R4B 2.3.0.4, alike in R5): relative "Type/id" or
absolute "<base>/Type/id", optionally with "/_history/<version>"."""


def literal_reference(reference: str) -> tuple[str, str] | None:
    """The resource type and logical id a literal reference names ("Patient", "ehr-1"), ignoring the server's
    base and the version; None for a contained ("#id"), urn: or otherwise unreadable reference."""
    match = _LITERAL_REFERENCE.fullmatch(reference)
    return None if match is None else (match["type"], match["id"])


def too_deep(document: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether objects and arrays nest more than ``limit`` levels deep in ``document`` (walked level by level,
    never recursively)."""
    level, depth = [document], 0
    while containers := [node for node in level if isinstance(node, dict | list)]:
        depth += 1
        if depth > limit:
            return True
        level = [
            child for node in containers for child in (node.values() if isinstance(node, dict) else node)
        ]
    return False


def check_depth(document: Any, at: Path) -> None:
    if too_deep(document):
        raise InvalidInput(
            pointer(at),
            f"The document is nested too deeply: at most {MAX_DEPTH} levels of objects and arrays.",
        )


@dataclass(frozen=True)
class Located:
    """A resource found in the document: its model, its JSON as sent, and its place."""

    resource: AnyResource
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
        match = _LITERAL_REFERENCE.fullmatch(reference)
        if match is not None and match["history"]:
            reference = reference.removesuffix(match["history"])  # a version names the same resource
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


def release_name(model: type[object]) -> str:
    """The FHIR release a fhir.resources model belongs to, as errors name it."""
    return "R5" if issubclass(model, R5Resource) else "R4B"


def _json_name(part: str | int) -> str | int:
    if part == "resource_type":
        return "resourceType"
    if isinstance(part, str) and part.endswith("__ext"):
        return "_" + part.removesuffix("__ext")
    return part


def _relocated(error: ValidationError, at: Path, model: type[object]) -> ValidationError:
    """fhir.resources' errors placed in the request body, with messages that never repeat the input."""
    details: list[InitErrorDetails] = []
    for detail in error.errors(include_input=False, include_url=False):
        kind = str(detail["type"])
        if kind in _PLAIN_ERROR_TYPES:
            error_type = PydanticCustomError(kind, detail["msg"])
        elif kind.endswith(".missing"):  # fhir.resources' own "required element" check
            error_type = PydanticCustomError("missing", "Field required")
        else:
            error_type = PydanticCustomError(
                "fhir_invalid", f"Not a valid FHIR {release_name(model)} value for this element."
            )
        loc = tuple(_json_name(part) for part in detail["loc"] if part != "root")
        details.append(InitErrorDetails(type=error_type, loc=(*at, *loc), input=None))
    return ValidationError.from_exception_data(model.__name__, details)


def validate(model: type[R], raw: Any, at: Path) -> R:
    """A resource read by fhir.resources; its errors located at ``at`` in the request body."""
    check_depth(raw, at)
    try:
        return cast(R, model.model_validate(raw))  # mypy reads the Self of a bound union as the union
    except ValidationError as error:
        raise _relocated(error, at, model) from None
    except RecursionError:
        raise InvalidInput(pointer(at), "The document is nested too deeply to be read.") from None
    except (KeyError, TypeError, ValueError, AttributeError):
        # fhir.resources fails this way on a contained resource of a type it does not know.
        raise InvalidInput(pointer(at), f"Not a valid FHIR {release_name(model)} resource.") from None


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


def codes(concept: AnyCodeableConcept | None, system: str) -> list[str]:
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
