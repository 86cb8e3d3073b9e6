"""The executor process's protocol, on a real spawned executor: the cancel handshake's timing windows the
worker tests only hit by chance (a cancel signal landing just before the job starts, or just after it ended),
and batches: reports, the journal that outlives the process, and a stop (freeze) that no job of the batch
can slip past."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator

import orjson
import pytest

from jobengine_worker import executor
from tests.support.wait import wait_until

SLEEP = "jobengine_worker.jobs.builtin.sleep"


@pytest.fixture()
def ex() -> Iterator[tuple[object, executor.Control, int]]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    control = executor.Control(ctx)
    control.allow(1_000)
    proc = ctx.Process(target=executor.main, args=(child, control), daemon=True)
    proc.start()
    child.close()
    ready = orjson.loads(parent.recv_bytes())
    yield parent, control, int(ready[1])
    proc.kill()
    proc.join(5)


def job(number: int, seconds: float, timeout: int = 30) -> list:  # type: ignore[type-arg]
    return [f"job-{number}", "sleep", SLEEP, {"seconds": seconds}, timeout, 1, "default", None, number]


def answer(conn) -> list:  # type: ignore[no-untyped-def,type-arg]
    assert conn.poll(20), "executor did not answer"
    return orjson.loads(conn.recv_bytes())


def signal_taken(pid: int, sig: int) -> bool:
    """True once `sig` sent to `pid` is no longer pending: the kernel delivered it to the process's handler."""
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
    bit = 1 << (sig - 1)
    return not (int(status["SigPnd"], 16) & bit or int(status["ShdPnd"], 16) & bit)


def running_job(control: executor.Control) -> int | None:
    current = control.running()
    return current[0] if current is not None else None  # type: ignore[index]


def run(conn, number: int, seconds: float) -> list:  # type: ignore[no-untyped-def,type-arg]
    """One job alone; its [id, kind, value, seconds]."""
    conn.send_bytes(orjson.dumps([job(number, seconds)]))
    (result,) = answer(conn)
    assert result[0] == number
    return result[1:]


def test_cancel_signalled_before_the_job_starts_still_cancels_it(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, pid = ex
    control.cancel(1)
    os.kill(pid, signal.SIGUSR1)  # lands while the executor waits for its next job: ignored, but remembered
    wait_until(lambda: signal_taken(pid, signal.SIGUSR1), message="the signal to be delivered")
    job_id, kind, _, _ = run(conn, 1, 60)  # not canceled, it would run a minute, past answer()'s deadline
    assert (job_id, kind) == ("job-1", "canceled")


def test_late_cancel_of_a_finished_job_does_not_cancel_the_next(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, pid = ex
    assert run(conn, 1, 0)[1] == "ok"
    control.cancel(1)  # job 1 is already done when its cancel lands
    os.kill(pid, signal.SIGUSR1)
    wait_until(lambda: signal_taken(pid, signal.SIGUSR1), message="the signal to be delivered")
    assert run(conn, 2, 0.2)[1] == "ok"


def test_cancel_of_the_running_job_stops_it(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, pid = ex
    conn.send_bytes(orjson.dumps([job(1, 60, timeout=90)]))
    wait_until(lambda: running_job(control) == 1, message="job 1 to run")
    control.cancel(1)
    os.kill(pid, signal.SIGUSR1)
    assert conn.poll(30), "the running job was not stopped"  # (it would run 60 s)
    assert orjson.loads(conn.recv_bytes())[0][2] == "canceled"
    assert control.running() is None


def test_a_batch_of_fast_jobs_is_answered_in_one_report(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, _ = ex
    conn.send_bytes(orjson.dumps([job(n, 0) for n in range(1, 51)]))
    results = answer(conn)
    assert [r[0] for r in results] == list(range(1, 51))
    assert {r[2] for r in results} == {"ok"}
    assert control.started() == 50 and control.running() is None
    # no second report of that batch follows: the next answer is the next batch's
    conn.send_bytes(orjson.dumps([job(51, 0)]))
    assert [r[0] for r in answer(conn)] == [51]


def test_a_slow_job_is_reported_as_it_ends_not_with_its_batch(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, _ = ex
    conn.send_bytes(orjson.dumps([job(1, 0.1), job(2, 1.5), job(3, 0)]))
    assert [(r[0], r[2]) for r in answer(conn)] == [(1, "ok")]
    assert running_job(control) in (2, None)  # job 1's report came before job 2 ended
    assert [r[0] for r in answer(conn)] == [2]
    assert [r[0] for r in answer(conn)] == [3]


def test_freeze_lets_the_running_job_finish_and_skips_the_rest(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, _ = ex
    conn.send_bytes(orjson.dumps([job(1, 0), job(2, 0.5), job(3, 0), job(4, 0)]))
    wait_until(lambda: control.started() >= 2, interval=0.002, message="job 2 to start")
    assert control.freeze() == 2  # job 2 runs: it may finish, 3 and 4 must never start
    results = answer(conn)
    while results[-1][0] != 4:
        results += answer(conn)
    assert [(r[0], r[2]) for r in results] == [(1, "ok"), (2, "ok"), (3, "skipped"), (4, "skipped")]
    assert control.started() == 2


def test_the_journal_keeps_the_outcomes_of_a_killed_executor(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, pid = ex
    conn.send_bytes(orjson.dumps([job(1, 0), job(2, 0), job(3, 30, timeout=60), job(4, 0)]))
    wait_until(lambda: running_job(control) == 3, message="job 3 to run")
    os.kill(pid, signal.SIGKILL)  # job 3 runs; 1 and 2 ended a moment ago, not reported yet
    with pytest.raises(EOFError):  # nothing was reported
        conn.recv_bytes()
    assert [(r[0], r[1], r[2]) for r in control.journaled()] == [(1, "job-1", "ok"), (2, "job-2", "ok")]
    assert control.started() == 3 and control.running() is not None and control.running()[0] == 3  # type: ignore[index]


def test_a_report_clears_the_journal(ex) -> None:  # type: ignore[no-untyped-def]
    conn, control, _ = ex
    conn.send_bytes(orjson.dumps([job(1, 0), job(2, 0)]))
    assert [r[0] for r in answer(conn)] == [1, 2]
    wait_until(lambda: control.journaled() == [], message="the journal to be cleared")
