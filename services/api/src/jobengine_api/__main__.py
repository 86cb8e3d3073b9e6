"""`python -m jobengine_api`: validate settings, then serve with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import math

import uvicorn

from jobengine import tracing
from jobengine.logs import setup_logging
from jobengine.settings import load_settings

from .main import create_app
from .serving import protocol_class


def main() -> None:
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    tracing.setup_tracing("jobengine-api")  # no-op unless OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_TRACES_EXPORTER
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        loop="uvloop",
        # httptools, with deadlines on request heads and bodies
        http=protocol_class(settings.http_header_timeout_seconds, settings.http_body_timeout_seconds),
        timeout_keep_alive=max(1, round(settings.http_keepalive_seconds)),
        h11_max_incomplete_event_size=16 * 1024,  # (h11 only: bounds a head's size if that parser is ever used)
        access_log=False,  # HTTP metrics cover it; a log line per request costs throughput
        log_config=None,  # keep our JSON logging
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.graceful_shutdown_seconds),
    )


if __name__ == "__main__":
    main()
