"""What a chain of wake-ups costs on this machine: pairs of processes passing a byte back and forth over
pipes, each doing a little pure-Python work a message. One pair is a lone chain (like one worker and its
Redis); two pairs keep both vCPUs busy. Nothing of jobengine runs: this measures the VM.

    .venv/bin/python -m bench.vcpu_wakeups            # blocking reads
    .venv/bin/python -m bench.vcpu_wakeups --spin     # each side polls (with sched_yield) up to 200 us first

On a 2-vCPU Firecracker guest (docs/benchmarks.md) one pair did 18,000-20,000 round trips/s with 300
iterations of work a message and two pairs 143,000-148,000: a lone chain pays about 20 us a hop.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import sys
import time
from typing import Any

SPIN_SECONDS = 0.0002
SECONDS = 3.0


def work(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def wait_readable(fd: int, spin: bool) -> None:
    if not spin:
        return
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    end = time.perf_counter() + SPIN_SECONDS
    while time.perf_counter() < end:
        if poller.poll(0):
            return
        os.sched_yield()


def side(read_fd: int, write_fd: int, n: int, leader: bool, spin: bool, out: Any) -> None:
    """The leader counts round trips for SECONDS and reports them; the follower echoes until killed."""
    end, trips = time.monotonic() + SECONDS, 0
    if leader:
        os.write(write_fd, b"x")
    while not leader or time.monotonic() < end:
        wait_readable(read_fd, spin)
        os.read(read_fd, 1)
        work(n)
        os.write(write_fd, b"x")
        trips += 1
    out.put(trips)


def round_trips(pairs: int, n: int, spin: bool) -> float:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = []
    for _ in range(pairs):
        a_read, b_write = os.pipe()
        b_read, a_write = os.pipe()
        procs += [ctx.Process(target=side, args=(a_read, a_write, n, True, spin, out)),
                  ctx.Process(target=side, args=(b_read, b_write, n, False, spin, out))]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in range(pairs))
    for p in procs:
        p.kill()
        p.join()
    return total / SECONDS


def main() -> int:
    spin = "--spin" in sys.argv
    for n in (300, 3000):
        one, two = round_trips(1, n, spin), round_trips(2, n, spin)
        print(f"work {n:>4} iterations a message{' (spin)' if spin else ''}: 1 pair {one:,.0f} round trips/s, "
              f"2 pairs {two:,.0f}, ratio {two / one:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
