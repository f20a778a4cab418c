"""The forms a result may arrive in, told apart by Content-Type, each turned into one ``Submission``.

Every form is JSON underneath and is parsed exactly (``parse_exact_json``); a form's decoder then reads its
own shape and returns the submission the rules decide on, or raises: pydantic's ``ValidationError`` or the
domain's ``InvalidInput``, both answered as 422 with pointers into the body. Nothing here decides.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.exact_json import JSON_MEDIA_TYPE, parse_exact_json
from app.api.schemas.assessments import AssessmentIn
from app.domain.errors import InvalidInput
from app.service.documents import Submission

Decoder = Callable[[Any], Submission]


@dataclass(frozen=True)
class Form:
    """One accepted request form: its media type, how to read it, and how the OpenAPI document shows it.

    ``pointers`` maps a plain request's field (``/il6/assay``) to where the form carries it, so that an
    error found only when deciding points into the document that was sent.
    """

    media_type: str
    decode: Decoder
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    description: str = ""
    pointers: Mapping[str, str] = field(default_factory=dict)

    def relocate(self, body: bytes, error: InvalidInput) -> InvalidInput:
        """``error``, about a plain field, located in the body this form was sent as."""
        located = self.pointers.get(error.pointer)
        return error if located is None else InvalidInput(located, error.message)

    def for_parameters(self, parameters: Mapping[str, str]) -> "Form":
        """The form that reads a body sent with these Content-Type parameters (names lowercased; charset is
        checked for every form): this one, unless a parameter selects a variant of it (FHIR's
        ``fhirVersion``); 415 for a parameter the form cannot honour."""
        return self


def plain_submission(document: Any) -> Submission:
    """The service's own request body, validated: the rules every other form is held to as well."""
    return AssessmentIn.model_validate(document).to_submission()


PLAIN_JSON = Form(
    JSON_MEDIA_TYPE,
    plain_submission,
    {"$ref": "#/components/schemas/AssessmentIn"},
    "The service's own request body.",
)


class Intake:
    """The registered forms, by media type."""

    def __init__(self, *forms: Form) -> None:
        self.forms = {form.media_type: form for form in forms}

    def form_of(self, request: Request) -> Form:
        """The form the request declares (415 for any other, or for a charset other than UTF-8). Its
        ``media_type`` is what the audit record keeps: a variant's names what selected it."""
        content_type = request.headers.get("content-type", "")
        media_type, _, text = content_type.partition(";")
        parameters = {
            name.strip().lower(): value.strip().strip('"')
            for name, _, value in (p.partition("=") for p in text.split(";"))
            if name.strip()
        }
        form = self.forms.get(media_type.strip().lower())
        if form is None or parameters.get("charset", "utf-8").lower() != "utf-8":
            accepted = ", ".join(sorted(self.forms))
            raise HTTPException(415, f"Send the body as one of {accepted}, in UTF-8.")
        return form.for_parameters(parameters)

    @staticmethod
    def read(form: Form, body: bytes) -> Submission:
        """Parse and decode a body; every failure is a RequestValidationError located in the body."""
        document = Intake.parse(body)
        try:
            return form.decode(document)
        except ValidationError as error:
            raise RequestValidationError(
                [{**detail, "loc": ("body", *detail["loc"])} for detail in error.errors(include_input=False)]
            ) from None

    @staticmethod
    def parse(body: bytes) -> Any:
        """Parse a body exactly (``parse_exact_json``); failures as a RequestValidationError."""
        if not body:
            raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
        try:
            return parse_exact_json(body)
        except json.JSONDecodeError as error:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", error.pos),
                        "msg": "JSON decode error",
                        "ctx": {"error": error.msg},
                    }
                ]
            ) from None

    def openapi_request_body(self) -> dict[str, Any]:
        forms = "; ".join(f"`{form.media_type}`: {form.description}" for form in self.forms.values())
        return {
            "required": True,
            "description": f"One IL6 result, in one of these forms (by Content-Type): {forms}",
            "content": {media_type: {"schema": form.schema} for media_type, form in self.forms.items()},
        }
