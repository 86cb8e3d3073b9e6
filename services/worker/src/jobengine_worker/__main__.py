"""`python -m jobengine_worker` / `jobengine-worker`: run one worker until SIGTERM."""

from __future__ import annotations

import logging

from jobengine import tracing
from jobengine.catalog import get_catalog
from jobengine.logs import setup_logging
from jobengine.settings import load_settings

from .worker import Worker


def main() -> None:
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    catalog = get_catalog()
    tracing.setup_tracing("jobengine-worker")  # no-op unless OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_TRACES_EXPORTER
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    logging.getLogger("jobengine.worker").info("job types", extra={"job_types": catalog.names()})
    Worker(settings, catalog).run()


if __name__ == "__main__":
    main()
