"""Where the client finds the API and its key: arguments first, then the environment."""

from __future__ import annotations

import os

DEFAULT_URL = "http://127.0.0.1:8000"  # `make run`
URL_ENV = "JOBENGINE_URL"
KEY_ENV = "JOBENGINE_API_KEY"


def resolve(url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """(base URL, API key): each from its argument, else JOBENGINE_URL / JOBENGINE_API_KEY, else the default URL
    and no key (an API with authentication off)."""
    url = url or os.environ.get(URL_ENV) or DEFAULT_URL
    api_key = api_key or os.environ.get(KEY_ENV) or None
    return url.rstrip("/"), api_key
