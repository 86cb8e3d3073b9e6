"""`python -m jobengine_worker` / `jobengine-worker`: run one worker until SIGTERM."""

from __future__ import annotations

import logging
import os
import sys

from jobengine import tracing
from jobengine.catalog import get_catalog
from jobengine.logs import setup_logging
from jobengine.settings import load_settings

from .deletion_cost import DeletionCostConfig, PodDeletionCost
from .worker import Worker


OUTSIDE_A_CLUSTER = ("JOBENGINE_POD_DELETION_COST=on but no Kubernetes API server (no KUBERNETES_SERVICE_HOST, "
                     "no JOBENGINE_KUBERNETES_API_URL): not in a cluster, the pod-deletion-cost updates stay off")


def load_deletion_cost() -> tuple[PodDeletionCost, str]:
    """The pod-deletion-cost hook from the environment and a warning to log, or exit 2 naming the variables
    missing (as load_settings does). The pod's name or namespace missing is a broken pod spec; only the API
    server missing, with both given, is the chart's env run outside a cluster (podman, compose): off then."""
    try:
        return PodDeletionCost.from_env(), ""
    except ValueError as exc:
        env = os.environ
        if env.get("JOBENGINE_POD_NAME") and env.get("JOBENGINE_POD_NAMESPACE"):
            return PodDeletionCost(DeletionCostConfig(enabled=False)), OUTSIDE_A_CLUSTER
        sys.stderr.write(f"invalid setting {exc}\n")
        raise SystemExit(2) from None


def main() -> None:
    settings = load_settings()
    deletion_cost, warning = load_deletion_cost()
    setup_logging(settings.log_level, settings.log_format)
    if warning:
        logging.getLogger("jobengine.worker").warning(warning)
    catalog = get_catalog()
    tracing.setup_tracing("jobengine-worker")  # no-op unless OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_TRACES_EXPORTER
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    logging.getLogger("jobengine.worker").info("job types", extra={"job_types": catalog.names()})
    Worker(settings, catalog, deletion_cost).run()


if __name__ == "__main__":
    main()
