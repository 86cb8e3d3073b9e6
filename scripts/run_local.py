"""`make run`: Redis (embedded unless REDIS_URL is set) + the API on 127.0.0.1:8000 + one worker.

Ctrl-C stops everything: the worker drains, the API stops, the embedded Redis shuts down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "libs" / "jobengine" / "src"))

from jobengine.redis_conn import EmbeddedRedis  # noqa: E402


def supervise(procs: dict[str, subprocess.Popen[bytes]], grace: float = 45.0) -> int:
    """Run until Ctrl-C/SIGTERM or until one process exits; then SIGTERM all (once) and wait for them.

    Returns 0 after a signal, else the exit code of the process that stopped first.
    """
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping", file=sys.stderr, flush=True)
                    code = proc.returncode or 1
                    stopping = True
            time.sleep(0.2)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
    return code


def main() -> int:
    env = dict(os.environ)
    env.setdefault("JOBENGINE_ENV", "development")
    env.setdefault("JOBENGINE_LOG_FORMAT", "text")
    env.setdefault("JOBENGINE_CONSOLE", "true")  # http://127.0.0.1:8000/console
    env.setdefault("JOBENGINE_WEBHOOKS_ALLOW_PRIVATE", "true")  # receivers on 127.0.0.1 (docs/security.md#webhooks)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # the API accepts the queues this launcher's worker serves (besides the job types' own)
    env.setdefault("JOBENGINE_QUEUES_DECLARED", env.get("JOBENGINE_QUEUES", "high,default,low"))
    redis_server = None
    url = env.get("JOBENGINE_REDIS_URL") or env.get("REDIS_URL")
    if not url:
        port = int(env.get("JOBENGINE_EMBEDDED_REDIS_PORT", "6390"))
        redis_server = EmbeddedRedis(port=port, directory=str(ROOT / ".run" / "redis")).start()
        url = redis_server.url
        print(f"embedded Redis on {url} (data in .run/redis, AOF on)", flush=True)
    env["JOBENGINE_REDIS_URL"] = url
    host, port = env.get("JOBENGINE_API_HOST", "127.0.0.1"), env.get("JOBENGINE_API_PORT", "8000")
    # Own sessions: a Ctrl-C reaches only this launcher, which asks each service once to stop (a
    # second signal would make the worker skip its drain).
    procs = {
        "api": subprocess.Popen([sys.executable, "-m", "jobengine_api"], env=env, start_new_session=True),
        "worker": subprocess.Popen([sys.executable, "-m", "jobengine_worker"], env=env, start_new_session=True),
    }
    metrics = env.get("JOBENGINE_API_METRICS_PORT", "9101")
    print(f"API on http://{host}:{port} (docs: http://{host}:{port}/docs, metrics: :{metrics}/metrics); "
          "Ctrl-C stops all", flush=True)

    try:
        code = supervise(procs)
    finally:
        if redis_server is not None:
            redis_server.stop()
        print("stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
