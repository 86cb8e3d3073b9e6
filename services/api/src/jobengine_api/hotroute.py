"""POST /v1/jobs straight to its handler, past FastAPI's router.

FastAPI's path to an endpoint (router matching over every route, the exception and exit-stack
middleware, dependency solving for a handler that has no dependencies) costs about as much CPU as
the whole submit: half of the request, measured in-process (bench/README: the API scenario). The
hot route is served here instead, innermost of our middleware, so authentication, the body limit,
metrics and tracing still wrap it. The FastAPI route stays registered: it documents the operation
in /docs, serves any method or path this does not take, and serves this one too when FastAPI's
native tracing follows the request (its router names the server span after the route).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, get_type_hints

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]


class HotRouteMismatch(RuntimeError):
    """The hot route's endpoint is not the kind this module can serve: raised at start-up."""


def check_route(route: APIRoute, fastapi_app: FastAPI) -> None:
    """Fail at start-up, naming each broken assumption, unless `route` is what __call__ serves correctly:
    one method on a fixed path, an async endpoint taking only the Request, nothing for FastAPI to solve
    (dependencies, parameters, a body model), and a handler for every Exception (else a 500 would
    escape the problem+json contract)."""
    broken = []
    if len(route.methods) != 1:
        broken.append(f"one method expected, got {sorted(route.methods)}")
    if "{" in route.path:
        broken.append("a path without parameters expected")
    endpoint = route.endpoint
    if not inspect.iscoroutinefunction(endpoint):
        broken.append("an async endpoint expected")
    params = list(inspect.signature(endpoint).parameters)
    hints = get_type_hints(endpoint)
    if len(params) != 1 or hints.get(params[0]) is not Request:
        broken.append(f"one parameter of type Request expected, got ({', '.join(params)})")
    dependant = route.dependant
    solved = (dependant.dependencies, dependant.path_params, dependant.query_params, dependant.header_params,
              dependant.cookie_params, dependant.body_params)
    if any(solved):
        broken.append("no dependencies or parameters for FastAPI to solve expected")
    if Exception not in fastapi_app.exception_handlers:
        broken.append("a handler for Exception expected (problems.install)")
    if broken:
        raise HotRouteMismatch(f"hot route {route.path} ({endpoint.__qualname__}) cannot be served past FastAPI's "
                               f"router: {'; '.join(broken)}. Fix the endpoint or drop it from hotroute.py.")


class HotRoute:
    """Serves `route` (a path without parameters, one method, a handler taking only the Request)."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI, route: APIRoute) -> None:
        check_route(route, fastapi_app)
        self.app = app
        self.fastapi_app = fastapi_app
        self.route = route
        self.path = route.path
        self.method = next(iter(route.methods))
        self.endpoint: Endpoint = route.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] != self.path or scope["method"] != self.method
                or "fastapi.telemetry" in scope):  # traced: FastAPI's router names the request's span
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # as the router sets it: metrics and spans are named by its template
        scope.setdefault("path_params", {})
        request = Request(scope, receive)
        try:
            response = await self.endpoint(request)
        except Exception as exc:
            response = await self.handler(exc)(request, exc)
        await response(scope, receive, send)

    def handler(self, exc: Exception) -> Handler:
        """The app's handler for this exception, looked up as Starlette's ExceptionMiddleware does
        (check_route made sure Exception has one)."""
        handlers: dict[Any, Handler] = self.fastapi_app.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]
        return next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
