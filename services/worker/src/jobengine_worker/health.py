"""`jobengine-worker-health`, the worker's exec probes.

- `jobengine-worker-health --live`: liveness. Exit 0 when JOBENGINE_LIVENESS_FILE was touched within
  JOBENGINE_LIVENESS_MAX_AGE_SECONDS: the worker's loop is progressing. Redis is not asked, so an outage
  of Redis restarts no worker (the worker waits for Redis itself, and its jobs keep running).
- `jobengine-worker-health [name]`: readiness. Exit 0 when this worker's heartbeat in Redis is fresh.
"""

from __future__ import annotations

import os
import socket
import sys
import time

import redis

from jobengine import keys
from jobengine.redis_conn import sync_client
from jobengine.settings import Settings, load_settings


def live(settings: Settings) -> tuple[bool, str]:
    """(alive, reason) from the age of the liveness file."""
    path = settings.liveness_file
    if not path:
        return False, "unhealthy: JOBENGINE_LIVENESS_FILE is not set"
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError as exc:
        return False, f"unhealthy: no liveness file: {exc}"
    if age > settings.liveness_max_age_seconds:
        return False, f"unhealthy: the worker's loop last ran {age:.0f} s ago"
    return True, "alive"


def heartbeat_fresh(settings: Settings, name: str | None) -> tuple[bool, str]:
    """(ready, reason) from this worker's heartbeat key in Redis."""
    try:
        client = sync_client(settings)
        if name:
            alive = bool(client.exists(keys.worker(name)))
        else:  # default names are host.pid: any worker of this host counts
            prefix = keys.worker(socket.gethostname() + ".")
            alive = any(k.decode().startswith(prefix) for k in client.smembers(keys.WORKERS_SET)
                        if client.exists(k))
    except redis.RedisError as exc:
        return False, f"unhealthy: Redis unreachable: {exc}"
    return alive, "healthy" if alive else "unhealthy: no fresh heartbeat"


def main() -> None:
    settings = load_settings()
    args = sys.argv[1:]
    if "--live" in args:
        ok, reason = live(settings)
    else:
        ok, reason = heartbeat_fresh(settings, args[0] if args else settings.worker_name)
    print(reason)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
