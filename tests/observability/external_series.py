"""Series the dashboard and alerts read from exporters that do not run in these tests, as their own docs
name them. CLEARLY A FIXTURE, not observed data: test_prometheus checks every other name against a real
Prometheus, and these against this list, so a typo in a redis_/keda_ name still fails.

- oliver006/redis_exporter (the chart's Redis sidecar, redis.exporter): README "What's exported" and
  exporter/info.go of v1.6x: INFO fields mapped to metric names (used_memory -> redis_memory_used_bytes,
  maxmemory -> redis_memory_max_bytes, aof_last_write_status / aof_last_bgrewrite_status -> the same names
  with the redis_ prefix, 1 ok / 0 err), INFO errorstats -> redis_errors_total{err="<prefix>"} (Redis >= 6.2),
  redis_up, redis_rejected_connections_total, redis_aof_rewrite_in_progress, redis_connected_clients.
- KEDA operator (keda.sh/docs/latest/integrations/prometheus, KEDA >= 2.14): keda_scaler_detail_errors_total
  with labels namespace (KEDA's own; the resource's is exported_namespace once scraped), scaledObject,
  scaler, triggerIndex, metric, type.
"""

from __future__ import annotations

REDIS_EXPORTER = frozenset({
    "redis_up",
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
    "redis_errors_total",
    "redis_aof_last_write_status",
    "redis_aof_last_bgrewrite_status",
    "redis_aof_rewrite_in_progress",
    "redis_rejected_connections_total",
    "redis_connected_clients",
})
KEDA_OPERATOR = frozenset({"keda_scaler_detail_errors_total"})
# Prometheus' own per-target series.
PROMETHEUS = frozenset({"up"})
DOCUMENTED = REDIS_EXPORTER | KEDA_OPERATOR
