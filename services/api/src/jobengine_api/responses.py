"""JSON responses rendered with orjson (FastAPI's ORJSONResponse is deprecated; this is the same idea)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"
