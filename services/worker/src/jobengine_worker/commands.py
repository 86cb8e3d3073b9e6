"""RQ's worker commands on the worker's pub/sub channel: stop-job (cancel), shutdown, kill-horse."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

import orjson

from jobengine import keys
from jobengine.redis_conn import TRANSIENT_ERRORS, sync_client
from jobengine.settings import Settings

log = logging.getLogger("jobengine.worker")


def listen_for_commands(settings: Settings, name: str, cancel: Callable[[str], None],
                        executor_pid: Callable[[], int | None]) -> None:
    """Run forever (a daemon thread): act on each command. Reconnects on its own."""
    client = sync_client(settings, blocking_timeout=None)
    backoff = 0.1
    while True:
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(keys.worker_pubsub(name))
            backoff = 0.1
            for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    payload = orjson.loads(message["data"])
                except orjson.JSONDecodeError:
                    continue
                command = payload.get("command")
                if command == "stop-job" and payload.get("job_id"):
                    cancel(str(payload["job_id"]))
                elif command == "shutdown":
                    os.kill(os.getpid(), signal.SIGTERM)
                elif command == "kill-horse" and (pid := executor_pid()):
                    os.kill(pid, signal.SIGKILL)
        except TRANSIENT_ERRORS:
            time.sleep(backoff)
            backoff = min(5.0, backoff * 2)
        except Exception:  # noqa: BLE001 - the command thread must outlive any surprise
            log.exception("command listener error")
            time.sleep(1)
