"""The web console at /console (JOBENGINE_CONSOLE): routes.py (pages and actions), sessions.py (the signed
session cookie and CSRF tokens), headers.py (CSP and the other security headers), templates/ and static/
(the console's own script and stylesheet; nothing third-party). docs/security.md, "Web console"."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from .headers import ConsoleHeaders
from .routes import router


def install(app: FastAPI) -> None:
    """Routes, assets and headers; the session signer is made in the lifespan (it may need Redis)."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=str(files(__package__) / "static")), name="console-static")
    app.add_middleware(ConsoleHeaders)
