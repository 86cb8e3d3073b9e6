"""`python -m jobengine_worker` / `jobengine-worker`: run one worker until SIGTERM."""

from __future__ import annotations

import logging
import sys

from jobengine import tracing
from jobengine.catalog import get_catalog
from jobengine.logs import setup_logging
from jobengine.settings import load_settings

from .deletion_cost import PodDeletionCost
from .worker import Worker


def load_deletion_cost() -> PodDeletionCost:
    """The pod-deletion-cost hook from the environment, or exit 2 with the variables missing (as load_settings)."""
    try:
        return PodDeletionCost.from_env()
    except ValueError as exc:
        sys.stderr.write(f"invalid setting {exc}\n")
        raise SystemExit(2) from None


def main() -> None:
    settings = load_settings()
    deletion_cost = load_deletion_cost()
    setup_logging(settings.log_level, settings.log_format)
    catalog = get_catalog()
    tracing.setup_tracing("jobengine-worker")  # no-op unless OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_TRACES_EXPORTER
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    logging.getLogger("jobengine.worker").info("job types", extra={"job_types": catalog.names()})
    Worker(settings, catalog, deletion_cost).run()


if __name__ == "__main__":
    main()
