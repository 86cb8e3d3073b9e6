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

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]


class HotRoute:
    """Serves `route` (a path without parameters, one method, a handler taking only the Request)."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI, route: APIRoute) -> None:
        assert len(route.methods) == 1 and "{" not in route.path, "a fixed path and one method"
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
            handler = self.handler(exc)
            if handler is None:
                raise  # ServerErrorMiddleware: a 500 problem, as on any route
            response = await handler(request, exc)
        await response(scope, receive, send)

    def handler(self, exc: Exception) -> Handler | None:
        """The app's handler for this exception, looked up as Starlette's ExceptionMiddleware does."""
        handlers: dict[Any, Handler] = self.fastapi_app.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]
        return None
