"""`jobengine-worker-health`: exit 0 when this worker's heartbeat in Redis is fresh (an exec probe)."""

from __future__ import annotations

import socket
import sys

import redis

from jobengine import keys
from jobengine.redis_conn import sync_client
from jobengine.settings import load_settings


def main() -> None:
    settings = load_settings()
    name = sys.argv[1] if len(sys.argv) > 1 else settings.worker_name
    try:
        client = sync_client(settings)
        if name:
            alive = bool(client.exists(keys.worker(name)))
        else:  # default names are host.pid: any worker of this host counts
            prefix = keys.worker(socket.gethostname() + ".")
            alive = any(k.decode().startswith(prefix) for k in client.smembers(keys.WORKERS_SET)
                        if client.exists(k))
    except redis.RedisError as exc:
        print(f"unhealthy: Redis unreachable: {exc}")
        sys.exit(1)
    print("healthy" if alive else "unhealthy: no fresh heartbeat")
    sys.exit(0 if alive else 1)


if __name__ == "__main__":
    main()
