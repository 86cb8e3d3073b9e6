"""The autoscaling simulation (bench/autoscale_sim.py): a short run of every trace through the HPA and
KEDA model fed by the rendered chart. The fixed chart interrupts no job and stays within 1.5x of the
ideal pod-seconds; a chart that does not count running jobs interrupts them. The model's HPA rules
are checked against the controller's documented arithmetic."""

from __future__ import annotations

from typing import Any

import pytest

from bench.autoscale_sim import (
    CHART,
    TRACES,
    Hpa,
    Job,
    PoolConfig,
    Rules,
    Simulation,
    chart_values,
    evaluate_formula,
    merge,
    pool_from_objects,
    render,
    simulate,
)
from tests.chart.conftest import find_helm as chart_helm

SHORT = {"steady": 1800, "bursty": 1500, "long-jobs": 3600, "several-queues": 1500}


@pytest.fixture(scope="module")
def helm() -> str:
    return chart_helm()  # fetches helm into .tools/bin when a fresh clone has none (bench's find_helm only looks)


def fixed_pool(trace_name: str, over: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    trace = next(t for t in TRACES if t.name == trace_name)
    return trace, merge(merge(trace.pool, trace.fixed), over or {})


@pytest.mark.parametrize("trace_name", sorted(SHORT))
def test_fixed_chart_interrupts_no_job_and_stays_near_the_ideal(helm: str, trace_name: str) -> None:
    trace, pool = fixed_pool(trace_name)
    result = simulate(trace, CHART, chart_values(pool, in_flight=True), "fixed", SHORT[trace_name], helm=helm)
    assert result.jobs > 20 and result.done == result.jobs
    assert result.interrupted == 0
    assert result.ratio <= 1.5, f"{result.pod_seconds:.0f} pod-s for {result.ideal:.0f} s of jobs"


def test_a_chart_that_does_not_count_running_jobs_interrupts_them(helm: str) -> None:
    """The same Deployment pool without the running-jobs trigger: replicas follow the waiting jobs
    alone, a scale-down SIGTERMs busy pods, and jobs longer than the drain go back to their queue."""
    over = {"drainSeconds": 25, "autoscaling": {"mode": "deployment", "minReplicas": 1, "allowInterruptingJobs": True}}
    trace, pool = fixed_pool("long-jobs", over)
    blind = simulate(trace, CHART, chart_values(pool, in_flight=False), "waiting only", SHORT["long-jobs"], helm=helm)
    assert blind.interrupted > 0
    counted = simulate(trace, CHART, chart_values(pool, in_flight=True), "counted", SHORT["long-jobs"], helm=helm)
    assert counted.interrupted == 0  # same drain: counting running jobs and idle-first deletion suffice here


def test_the_hpa_fallback_interrupts_no_job_either(helm: str) -> None:
    """KEDA off: the CPU HPA sees no backlog, but deletion cost and the drain rule still protect the jobs."""
    trace, pool = fixed_pool("long-jobs", {"drainSeconds": 1800, "autoscaling": {"mode": "deployment", "minReplicas": 1}})
    values = chart_values(pool, in_flight=False) | {"keda": {"enabled": False, "inFlight": {"enabled": False}}}
    result = simulate(trace, CHART, values, "cpu", SHORT["long-jobs"], helm=helm)
    assert result.done == result.jobs and result.interrupted == 0
    config = pool_from_objects(render(CHART, values, helm), "sim")
    assert (config.cpu_target, config.cpu_request) == (80.0, 0.25)  # read from the rendered HPA and Deployment


def test_the_model_reads_the_rendered_chart(helm: str) -> None:
    _, pool = fixed_pool("several-queues", {"drainSeconds": 200, "autoscaling": {"targetJobsPerReplica": 4}})
    config = pool_from_objects(render(CHART, chart_values(pool, in_flight=True), helm), "sim")
    assert (config.drain, config.grace, config.deletion_cost) == (200.0, 210, True)
    assert config.queues == ["high", "default", "low"]
    values = {"waiting0": 3.0, "waiting1": 4.0, "waiting2": 1.0, "running": 5.0,
              "paused0": 0.0, "paused1": 0.0, "paused2": 0.0}  # (the model never pauses a queue: 0)
    assert {m.name for m in config.metrics} == set(values)
    assert {m.kind for m in config.metrics if m.name.startswith("paused")} == {"paused"}
    assert config.formula is not None
    assert evaluate_formula(config.formula, values) == 5 + 8 / 4  # each running job a replica, waiting / target
    assert config.down.stabilization == 60


def test_hpa_tolerance_and_average_value() -> None:
    assert Hpa.replicas_for(10.5, 1, 10) == 10  # within 0.1 of the target: no change
    assert Hpa.replicas_for(11.5, 1, 10) == 12
    assert Hpa.replicas_for(0.5, 1, 3) == 1


def test_hpa_scale_up_policies_and_scale_down_window() -> None:
    pool = PoolConfig("p", ["q"], "deployment", 10, 20, False, min_replicas=1, max_replicas=100,
                      formula="w", formula_target=1.0,
                      up=Rules(0, "Max", [("Percent", 100, 15), ("Pods", 4, 15)]),
                      down=Rules(60, "Max", [("Percent", 50, 60)]))
    hpa = Hpa(pool)
    assert hpa.step(0, {"w": 40}, 1) == 5  # max(1 * 2, 1 + 4)
    assert hpa.step(15, {"w": 40}, 5) == 10  # max(5 * 2, 5 + 4)
    assert hpa.step(30, {"w": 2}, 10) == 10  # the window still holds a recommendation of 40
    assert hpa.step(90, {"w": 2}, 10) == 5  # window passed; at most half the pods a minute


def test_draining_pod_finishes_its_job_or_hands_it_back() -> None:
    pool = PoolConfig("p", ["q"], "deployment", drain=30, grace=40, deletion_cost=True, min_replicas=0,
                      formula="w", formula_target=1.0)
    jobs = [Job(0, "q", 0, 20), Job(1, "q", 0, 100)]
    sim = Simulation(pool, jobs, 10, start_seconds=0)
    sim.queues["q"].extend(jobs)
    for _ in range(2):
        sim.add_pod(0, started=True)
    sim.tick(0)
    for pod in sim.live():
        sim.sigterm(pod, 1)
    for t in range(1, 40):
        sim.tick(t)
    assert jobs[0].ended == 20 and jobs[0].interruptions == 0
    assert jobs[1].interruptions == 1 and list(sim.queues["q"]) == [jobs[1]] and sim.interrupted == 1
