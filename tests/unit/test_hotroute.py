"""The hot route refuses, at start-up and with a message naming each broken assumption, an endpoint it
could not serve correctly past FastAPI's router."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Query, Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from jobengine.settings import Settings
from jobengine_api import problems
from jobengine_api.hotroute import HotRouteMismatch, check_route
from jobengine_api.routes import jobs


def route_of(app: FastAPI, path: str) -> APIRoute:
    return next(r for r in app.routes if isinstance(r, APIRoute) and r.path == path)


def app_with(endpoint, **kwargs) -> tuple[FastAPI, APIRoute]:  # type: ignore[no-untyped-def]
    app = FastAPI()
    problems.install(app)
    app.post("/hot", **kwargs)(endpoint)
    return app, route_of(app, "/hot")


async def good(request: Request) -> Response:
    return Response()


async def with_query(request: Request, n: int = Query(1)) -> Response:
    return Response()


async def without_request() -> Response:
    return Response()


def sync_endpoint(request: Request) -> Response:
    return Response()


def test_the_submit_route_passes() -> None:
    app = FastAPI()
    problems.install(app)
    check_route(jobs.submit_route(), app)


@pytest.mark.parametrize(("endpoint", "message"), [
    (with_query, "no dependencies or parameters"),
    (without_request, "one parameter of type Request"),
    (sync_endpoint, "an async endpoint"),
])
def test_an_endpoint_it_cannot_serve_fails_with_a_clear_message(  # type: ignore[no-untyped-def]
        endpoint, message: str) -> None:
    app, route = app_with(endpoint)
    with pytest.raises(HotRouteMismatch, match=message):
        check_route(route, app)


def test_a_path_parameter_or_a_second_method_fails() -> None:
    app = FastAPI()
    problems.install(app)
    app.api_route("/hot/{x}", methods=["POST", "PUT"])(good)
    with pytest.raises(HotRouteMismatch, match="one method expected.*a path without parameters"):
        check_route(route_of(app, "/hot/{x}"), app)


def test_without_a_catch_all_exception_handler_it_fails() -> None:
    app = FastAPI()
    app.post("/hot")(good)
    with pytest.raises(HotRouteMismatch, match="a handler for Exception"):
        check_route(route_of(app, "/hot"), app)


def test_create_app_checks_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobengine_api import main

    async def changed(request: Request, extra: str = Query("")) -> Response:  # as if someone added a parameter
        return Response()

    app = FastAPI()
    app.post("/v1/jobs")(changed)
    monkeypatch.setattr(jobs, "submit_route", lambda: route_of(app, "/v1/jobs"))
    with pytest.raises(HotRouteMismatch, match="no dependencies or parameters"):
        main.create_app(Settings(env="development", redis_url="redis://127.0.0.1:1/0"))
