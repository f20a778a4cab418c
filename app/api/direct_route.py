"""A route FastAPI documents from its declaration but does not solve on each request: for the busiest route.

FastAPI solves every dependency and parameter of a route anew on each request. On POST /v1/assessments that
cost about as much as reading and deciding the result, so that route is a ``DirectRoute``: it is declared,
and documented in the OpenAPI document, exactly as any other route, but at run time it

- checks the caller as its ``requires`` dependencies (the protected routers' own included) would, with
  ``admitted``; any other dependency is refused, never skipped;
- reads and validates its header parameters with FastAPI's own ``request_params_to_args``, and raises what
  they fail with as FastAPI raises it (a ``RequestValidationError``, answered 422);
- calls the endpoint with the request and those headers; the endpoint returns its ``Response`` itself.

A path, query, cookie or body parameter, or a ``Response`` parameter, is refused too. What is refused is
refused when the route is built: its own declaration at once, the dependencies of the router that includes
it when FastAPI builds the included route (at the first request it routes). Since it runs no dependency,
``app.dependency_overrides`` do not reach it.
"""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError

# FastAPI builds an included route's handler with the inclusion's dependencies (the protected routers'
# ``requires``) in this context, as its own ``APIRoute.get_route_handler`` reads them.
from fastapi.routing import _effective_route_context_var

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
        headers = dependant.header_params
        request_name = dependant.request_param_name
        endpoint = self.endpoint

        async def direct_handler(request: Request) -> Response:
            request = ExactJSONRequest(request.scope, request.receive)
            for check in checks:
                check(request)
            values, errors = request_params_to_args(headers, request.headers)
            if errors:
                raise RequestValidationError(errors)
            response: Response = await endpoint(**{request_name: request}, **values)
            return response

        return direct_handler
