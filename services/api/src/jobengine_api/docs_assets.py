"""/docs and /redoc with their assets served by the API itself: the pinned `fastapi-offline` wheel ships
Swagger UI's and ReDoc's dist files (swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js), so the docs
render where the cluster has no internet access, and no third-party file is committed here."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

# ReDoc's sidebar shows Redocly's logo from their CDN; this policy keeps both pages on the API's own origin
# (inline script and styles are FastAPI's page and the bundles' own; workers run from blob: URLs).
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
ASSETS = "/docs/assets"  # under /docs: the chart's ingress routes that prefix


def _kept_home(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CSP
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Referrer-Policy"] = "no-referrer"
    return page


def install(app: FastAPI) -> None:
    """Call with a FastAPI built with docs_url=None, redoc_url=None."""
    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        return _kept_home(get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - Swagger UI",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon.png",
                                   oauth2_redirect_url="/docs/oauth2-redirect"))

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        return _kept_home(get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc",
                                         redoc_js_url=f"{ASSETS}/redoc.standalone.js",
                                         redoc_favicon_url=f"{ASSETS}/favicon.png", with_google_fonts=False))

    app.add_route("/docs", swagger_ui, include_in_schema=False)
    app.add_route("/docs/oauth2-redirect", oauth2_redirect, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
