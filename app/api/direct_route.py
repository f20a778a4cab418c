"""A route FastAPI documents from its declaration but does not solve on each request: for the busiest route.

FastAPI solves every dependency and parameter of a route anew on each request. On POST /v1/assessments that
cost about as much as reading and deciding the result, so that route is a ``DirectRoute``: it is declared,
and documented in the OpenAPI document, exactly as any other route, but at run time it

- checks the caller as its ``requires`` dependencies (the protected routers' own included) would, with
  ``admitted``; any other dependency is refused, never skipped;
- reads each of its header parameters by its alias and validates it with the parameter's own FastAPI field,
  and raises what they fail with as FastAPI raises it (a ``RequestValidationError``, answered 422). A header
  parameter must name its alias (not its own name, which FastAPI reads with hyphens for underscores), take
  one value (no list, no model) and have a default. FastAPI's own ``request_params_to_args`` works out
  again on every request which kind each parameter is, which cost more than validating it;
- calls the endpoint with the request and those headers; the endpoint returns its ``Response`` itself.

A path, query, cookie or body parameter, or a ``Response`` parameter, is refused too. What is refused is
refused when the route is built: its own declaration at once, the dependencies of the router that includes
it when FastAPI builds the included route (at the first request it routes). Since it runs no dependency,
``app.dependency_overrides`` do not reach it.
"""

from collections.abc import Callable, Collection, Coroutine
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, Protocol, get_args, get_origin

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError

# FastAPI builds an included route's handler with the inclusion's dependencies (the protected routers'
# ``requires``) in this context, as its own ``APIRoute.get_route_handler`` reads them.
from fastapi.routing import _effective_route_context_var
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from starlette.datastructures import Headers

from app.api.auth import admission_check
from app.api.exact_json import ExactJSONRequest, ExactJSONRoute


class DirectRoute(ExactJSONRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        context = _effective_route_context_var.get()
        dependant = (
            context.dependant if context is not None and context.original_route is self else self.dependant
        )
        checks = []
        for dependency in dependant.dependencies:
            check = admission_check(dependency.call) if dependency.call is not None else None
            if check is None:
                raise TypeError(
                    f"{self.path}: a DirectRoute runs no dependency but requires(): {dependency.call}"
                )
            checks.append(check)
        unsupported = (
            dependant.path_params
            or dependant.query_params
            or dependant.cookie_params
            or dependant.body_params
        )
        if unsupported or dependant.response_param_name is not None or dependant.request_param_name is None:
            raise TypeError(f"{self.path}: a DirectRoute's endpoint takes the request and headers only")
        headers = [_HeaderParameter.of(self.path, field) for field in dependant.header_params]
        request_name = dependant.request_param_name
        endpoint = self.endpoint

        async def direct_handler(request: Request) -> Response:
            request = ExactJSONRequest(request.scope, request.receive)
            for check in checks:
                check(request)
            values: dict[str, Any] = {}
            errors: list[Any] = []
            received = request.headers
            for header in headers:
                header.read(received, values, errors)
            if errors:
                raise RequestValidationError(errors)
            response: Response = await endpoint(**{request_name: request}, **values)
            return response

        return direct_handler


class _Field(Protocol):
    """What a DirectRoute uses of a FastAPI parameter's field."""

    name: str
    field_info: FieldInfo

    @property
    def default(self) -> Any: ...

    def validate(
        self, value: Any, values: dict[str, Any] = ..., *, loc: tuple[int | str, ...] = ()
    ) -> tuple[Any, list[dict[str, Any]]]: ...


@dataclass(frozen=True)
class _HeaderParameter:
    """One header parameter of a DirectRoute: read by its alias, validated by its FastAPI field."""

    field: _Field
    alias: str

    @classmethod
    def of(cls, path: str, field: _Field) -> "_HeaderParameter":
        info = field.field_info
        annotation = info.annotation
        if (
            info.alias in (None, field.name)
            or info.validation_alias not in (None, info.alias)
            or info.is_required()
            or not _one_plain_value(annotation)
        ):
            raise TypeError(
                f"{path}: a DirectRoute's header parameter names its alias, takes one value and has a "
                f"default: {field.name}"
            )
        return cls(field, info.alias)

    def read(self, received: Headers, values: dict[str, Any], errors: list[Any]) -> None:
        """As FastAPI reads a header parameter: its value into ``values`` by name, or its errors."""
        value = received.get(self.alias)
        if value is None:
            value = deepcopy(self.field.default)
            if not self.field.field_info.validate_default:
                values[self.field.name] = value
                return
        validated, failed = self.field.validate(value, values, loc=("header", self.alias))
        if failed:
            errors.extend(failed)
        else:
            values[self.field.name] = validated


def _one_plain_value(annotation: Any) -> bool:
    """Whether the annotation takes one plain value: no collection (FastAPI reads each of a repeated
    header's values into one) and no pydantic model (FastAPI reads a model's fields as headers), in the
    annotation or any of its arguments (``list[str] | None``, ``Model | None``)."""
    kind = get_origin(annotation) or annotation
    if isinstance(kind, type) and (issubclass(kind, BaseModel) or _is_collection(kind)):
        return False
    return all(_one_plain_value(argument) for argument in get_args(annotation))


def _is_collection(kind: type) -> bool:
    return issubclass(kind, Collection) and not issubclass(kind, (str, bytes))
