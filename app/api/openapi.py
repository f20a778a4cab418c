"""The OpenAPI document as the service really answers: errors as application/problem+json only."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.problems import PROBLEM_MEDIA_TYPE, Problem
from app.api.schemas.assessments import AssessmentIn

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _problem_only(responses: dict[str, Any]) -> None:
    for status, response in responses.items():
        if status.startswith(("4", "5")):
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}


def install_openapi(app: FastAPI) -> None:
    """Generate the document once, with every 4xx/5xx response described as a Problem."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        # Bodies the routes read themselves (several forms by Content-Type) are not seen by FastAPI.
        for model in (Problem, AssessmentIn):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for path in document["paths"].values():
            for operation in path.values():
                _problem_only(operation["responses"])
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
