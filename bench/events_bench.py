"""Event streams: submit latency with 2,000 SSE streams open on one API process, beside the figure without any.

    .venv/bin/python -m bench.events_bench                         # 2,000 streams, 20 s of submits (make bench-events)
    .venv/bin/python -m bench.events_bench --streams 200 --seconds 3   # a quick look

One redis-server, one API process and one worker, all on 127.0.0.1. Submits: `--clients` concurrent clients
POSTing /v1/jobs (the add job) for `--seconds`; each request's latency is recorded. First with no stream open,
then with `--streams` clients of GET /v1/events open (plain asyncio sockets reading the event stream), each of
which must receive the events of the jobs submitted meanwhile (one Redis reader in the API fans them out).
Printed: submit p50/p99 and rate for both runs, and the events the streams received (expected: streams x events).
Bounded: every phase has a deadline, and the processes are stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx

from bench.run import MAIN_PY, ROOT, env_for, fresh_redis, processes, start_jobengine_worker, wait_api
from jobengine.redis_conn import free_port


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))


async def submit_for(base: str, seconds: float, clients: int) -> list[float]:
    """Latencies (s) of the submits `clients` concurrent clients made in `seconds`."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 limits=httpx.Limits(max_connections=clients)) as client:
        async def one_client(i: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                resp = await client.post("/v1/jobs", json={"type": "add", "payload": {"a": i, "b": n}})
                latencies.append(time.perf_counter() - t)
                assert resp.status_code == 202, resp.text
                n += 1

        await asyncio.gather(*(one_client(i) for i in range(clients)))
    return latencies


class Streams:
    """n open GET /v1/events streams on raw sockets; counts the `data:` lines each received."""

    def __init__(self, port: int, paths: list[str]) -> None:
        self.port, self.paths, self.n = port, paths, len(paths)
        self.received = 0
        self.opened = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def open(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for i, path in enumerate(self.paths):  # in waves of 100, as clients come: not 2,000 at one instant
            self.tasks.append(asyncio.create_task(self._one(path)))
            while i - self.opened >= 100:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {self.opened} of {self.n} streams opened")
                await asyncio.sleep(0.01)
        while self.opened < self.n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.opened} of {self.n} streams opened")
            await asyncio.sleep(0.1)

    async def _one(self, path: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n" % path.encode())
        await writer.drain()
        status = await reader.readline()
        assert b" 200 " in status, status
        self.opened += 1
        tail = b""
        try:  # chunks, not lines: the client must cost little beside the API it measures on the same machine
            while chunk := await reader.read(65536):
                text = tail + chunk
                self.received += text.count(b"\ndata: ")
                tail = text[-8:]
        finally:
            writer.close()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def figures(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"submits": len(ordered), "rate": len(ordered) / seconds,
            "p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000}


def events_after(client: Any, key: str, after: str) -> int:
    """Events in the stream's entries after `after` (an entry holds one event a line: lua/_events.lua)."""
    return sum(fields[b"e"].count(b"\n") + 1 for _, fields in client.xrange(key, f"({after}", "+"))


async def drained(client: Any, timeout: float = 120) -> None:
    """Wait until the worker has taken every waiting job (and a moment for the last ones to end): each phase starts
    from an empty queue, so the streams' phase does not also carry the events of the quiet phase's backlog."""
    deadline = time.monotonic() + timeout
    while client.llen("rq:queue:default") > 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not drain the queue")
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)


async def waiting_jobs(base: str, n: int) -> list[str]:
    """n jobs delayed an hour (followed, they send no event during the run), submitted in batches."""
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        while len(ids) < n:
            jobs = [{"type": "add", "payload": {"a": 0, "b": 0}, "delay_seconds": 3600}
                    for _ in range(min(100, n - len(ids)))]
            resp = await client.post("/v1/jobs:batch", json={"jobs": jobs})
            assert resp.status_code == 202, resp.text
            ids += [r["id"] for r in resp.json()["results"]]
    return ids


async def run(port: int, streams_n: int, seconds: float, clients: int, url: str, follow: str) -> None:
    import redis

    base = f"http://127.0.0.1:{port}"
    client = redis.Redis.from_url(url)
    await submit_for(base, min(2.0, seconds), clients)  # warm-up
    await drained(client)
    quiet = figures(await submit_for(base, seconds, clients), seconds)
    await drained(client)
    if follow == "tenant":  # every stream gets every event of the tenant: the fan-out's worst case
        paths = ["/v1/events"] * streams_n
    else:  # each stream follows one waiting job: what 2,000 clients watching their own jobs cost the others
        paths = [f"/v1/jobs/{job_id}/events" for job_id in await waiting_jobs(base, streams_n)]
    streams = Streams(port, paths)
    await streams.open(timeout=120)
    await asyncio.sleep(1.0)
    opening = streams.received  # (a job stream starts with its job's state)
    key = "jobengine:events:default"
    newest = client.xrevrange(key, count=1)
    before = newest[0][0].decode() if newest else "0-0"
    loaded = figures(await submit_for(base, seconds, clients), seconds)
    written = events_after(client, key, before)  # (the stream is far from its bound here)
    want = streams_n * written if follow == "tenant" else 0
    deadline = time.monotonic() + 60
    while streams.received - opening < want and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        written = events_after(client, key, before)
        want = streams_n * written if follow == "tenant" else 0
    received = streams.received - opening
    await streams.close()
    print(f"{'':28} {'submits':>8} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, f in (("no event stream", quiet), (f"{streams_n} {follow} streams open", loaded)):
        print(f"{name:28} {f['submits']:8.0f} {f['rate']:8.0f} {f['p50_ms']:8.2f} {f['p99_ms']:8.2f}")
    print(f"events written while the streams were open: {written:,}; received by the streams: {received:,} "
          f"(expected {want:,}: {'every stream every event' if follow == 'tenant' else 'their jobs wait'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--follow", choices=("jobs", "tenant"), default="jobs",
                        help="jobs: each stream follows one waiting job; tenant: every stream the tenant's events")
    args = parser.parse_args()
    raise_fd_limit(args.streams * 2 + 512)
    with fresh_redis() as server, processes() as procs:
        port = free_port()
        procs.append(subprocess.Popen([MAIN_PY, "-m", "jobengine_api"], cwd=ROOT, env=env_for(
            server.url, JOBENGINE_API_PORT=str(port), JOBENGINE_AUTH="off", JOBENGINE_LOG_LEVEL="WARNING",
            JOBENGINE_AUTH_ALLOW_OFF_IN_PRODUCTION="true", JOBENGINE_WEBHOOKS="false"),
            stdout=subprocess.DEVNULL))
        procs.append(start_jobengine_worker(server.url, "events-bench"))
        wait_api(f"http://127.0.0.1:{port}", server.url)
        asyncio.run(asyncio.wait_for(run(port, args.streams, args.seconds, args.clients, server.url, args.follow),
                                     timeout=args.seconds * 2 + 300))
    return 0


if __name__ == "__main__":
    sys.exit(main())
