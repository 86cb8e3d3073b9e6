"""Autoscaling simulation: workload traces replayed through models of KEDA, the Kubernetes HPA, the
ReplicaSet and the worker, all configured by a rendered chart (docs/kubernetes.md, "Autoscaling").

No cluster can run here, so the parts are modelled on their documented and coded behaviour and
read their settings from `helm template` output, never from a restatement:
- KEDA ScaledObject: the trigger list, the scalingModifiers formula (parsed and evaluated as written),
  target, activation, min/max, pollingInterval, cooldownPeriod; redis triggers read the live LLEN,
  the prometheus trigger reads jobengine_queue_in_flight as of the last scrape (ServiceMonitor
  interval). Without scalingModifiers the HPA gets one metric a trigger and takes the max.
- HPA (pkg/controller/podautoscaler): 15 s sync, tolerance 0.1, AverageValue external metrics
  (desired = ceil(value / target)), stabilisation windows (max of the recommendations of the
  scale-down window, min of the scale-up window), scale-up/down policies with selectPolicy and
  periodSeconds over past scale events, min/max replicas; KEDA alone moves 0 <-> 1.
- ReplicaSet: a scale-down deletes not-ready pods first, then the lowest pod-deletion-cost, then the
  newest (controller.ActivePodsWithRanks); the cost follows the worker as deletion_cost.py sends it.
- Worker (one job at a time): on SIGTERM it takes no new job, lets the running job finish within
  JOBENGINE_DRAIN_SECONDS (capped by terminationGracePeriodSeconds), then hands it back to the tail
  of its queue: an interrupted job, which starts again from the beginning.
- ScaledJob (accurate strategy, sum over triggers): a Job per waiting job each pollingInterval; its
  worker takes JOBENGINE_MAX_JOBS jobs and exits, or exits after JOBENGINE_IDLE_EXIT_SECONDS.

Run: `make autoscale-sim` (table; JSON in .run/autoscale/) and `make autoscale-plot` (docs/img/autoscale.png).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jobengine_worker.deletion_cost import BUSY_COST, IDLE_COST, IDLE_GRACE_SECONDS

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "jobengine"
BASE_COMMIT = "6e9ed87"  # the chart before this change ("today's chart" of issue 15)
HPA_SYNC_SECONDS = 15  # kube-controller-manager --horizontal-pod-autoscaler-sync-period default
HPA_TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance default
POD_START_SECONDS = 20  # schedule + pull (cached) + Python start until the worker takes jobs
PATCH_LATENCY_SECONDS = 1  # a pod-deletion-cost PATCH until the ReplicaSet controller sees it
DEFAULT_SCRAPE_SECONDS = 15
CPU_BUSY_CORES = 1.0  # HPA fallback model: a running job keeps one core busy (CPU-bound jobs: what it can see)
CPU_IDLE_CORES = 0.01  # a worker waiting for work


# ---------------- the rendered chart ----------------

def find_helm() -> str:
    found = shutil.which("helm") or str(ROOT / ".tools/bin/helm")
    if not Path(found).exists():
        raise SystemExit("no helm: run `make tools` (scripts/install-tools.sh)")
    return found


def render(chart: Path, values: dict[str, Any], helm: str | None = None) -> list[dict[str, Any]]:
    """`helm template` of chart with values; the objects."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump({"secrets": {"generateWithoutLookup": True}, **values}, f)  # helm template: no lookup
        f.flush()
        proc = subprocess.run([helm or find_helm(), "template", "rel", str(chart), "--namespace", "jobs", "-f", f.name],
                              capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"helm template {chart}: {proc.stderr.strip()}")
    return [o for o in yaml.safe_load_all(proc.stdout) if o]


@contextmanager
def base_chart(commit: str = BASE_COMMIT) -> Iterator[Path]:
    """The chart of an older commit, extracted from git into a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "charts/jobengine"],
                                 capture_output=True, check=True, timeout=60).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True, timeout=60)
        yield Path(tmp) / "charts" / "jobengine"


def evaluate_formula(formula: str, values: dict[str, float]) -> float:
    """A KEDA scalingModifiers formula (expr-lang), arithmetic subset: numbers, trigger names, + - * / ()."""
    ops: dict[type, Callable[[float, float], float]] = {
        ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b,
    }

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            return values[node.id]
        raise ValueError(f"formula {formula!r}: unsupported {ast.dump(node)}")

    return walk(ast.parse(formula, mode="eval"))


@dataclass
class Metric:
    """One KEDA trigger as the HPA sees it: a source and, for a separate metric, its target."""

    name: str
    kind: str  # waiting (LLEN of one queue) or running (prometheus in-flight over queues)
    queues: tuple[str, ...]
    target: float
    activation: float


IN_FLIGHT_QUERY = re.compile(r'jobengine_queue_in_flight\{[^}]*queue=~"([^"]+)"[^}]*\}')


def trigger_metric(trigger: dict[str, Any]) -> Metric:
    meta = trigger["metadata"]
    if trigger["type"] in ("redis", "redis-sentinel") and meta["listName"].startswith("jobengine:paused:"):
        return Metric(trigger["name"], "paused", (), 1.0, 0.0)  # a pause marker: the model never pauses (0)
    if trigger["type"] in ("redis", "redis-sentinel"):
        queue = meta["listName"].removeprefix("rq:queue:")
        return Metric(trigger["name"], "waiting", (queue,), float(meta["listLength"]),
                      float(meta.get("activationListLength", 0)))
    if trigger["type"] == "prometheus":
        query = meta["query"]
        if not query.startswith("sum(max by (queue) (") or not (match := IN_FLIGHT_QUERY.search(query)):
            raise ValueError(f"prometheus query not understood by the model: {query}")
        queues = tuple(q.replace("\\", "") for q in match.group(1).split("|"))
        return Metric(trigger["name"], "running", queues, float(meta["threshold"]),
                      float(meta.get("activationThreshold", 0)))
    raise ValueError(f"trigger type {trigger['type']} not modelled")


@dataclass
class Rules:
    stabilization: int
    select: str
    policies: list[tuple[str, int, int]]  # (type, value, periodSeconds)


def hpa_rules(behavior: dict[str, Any] | None, direction: str) -> Rules:
    """A behavior direction, with the HPA's defaults for what is not set."""
    defaults = {
        "scaleUp": Rules(0, "Max", [("Percent", 100, 15), ("Pods", 4, 15)]),
        "scaleDown": Rules(300, "Max", [("Percent", 100, 15)]),
    }[direction]
    spec = (behavior or {}).get(direction) or {}
    return Rules(
        stabilization=spec.get("stabilizationWindowSeconds", defaults.stabilization),
        select=spec.get("selectPolicy", "Max"),
        policies=[(p["type"], p["value"], p["periodSeconds"]) for p in spec["policies"]]
        if spec.get("policies") else defaults.policies,
    )


@dataclass
class PoolConfig:
    """Everything the model needs about one pool, read from the rendered objects."""

    name: str
    queues: list[str]
    mode: str  # deployment or scaledJob
    drain: float
    grace: float
    deletion_cost: bool
    min_replicas: int = 1
    max_replicas: int = 10
    polling: int = 30
    cooldown: int = 300
    metrics: list[Metric] = field(default_factory=list)
    formula: str | None = None
    formula_target: float = 1.0
    formula_activation: float = 0.0
    up: Rules = field(default_factory=lambda: hpa_rules(None, "scaleUp"))
    down: Rules = field(default_factory=lambda: hpa_rules(None, "scaleDown"))
    scrape: int = DEFAULT_SCRAPE_SECONDS
    max_jobs_per_pod: int = 0  # scaledJob: JOBENGINE_MAX_JOBS
    idle_exit: float = 30.0
    cpu_target: float | None = None  # HPA fallback: averageUtilization (percent of the CPU request)
    cpu_request: float = 0.25  # cores, the worker container's requests.cpu


def env_value(container: dict[str, Any], name: str) -> str | None:
    return next((e.get("value") for e in container.get("env", []) if e["name"] == name), None)


def pool_from_objects(objects: list[dict[str, Any]], pool: str) -> PoolConfig:
    def find(kind: str) -> dict[str, Any] | None:
        return next((o for o in objects if o["kind"] == kind
                     and o["metadata"]["labels"].get("jobengine.io/pool") == pool), None)

    scrape = DEFAULT_SCRAPE_SECONDS
    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        scrape = int(str(monitor["spec"]["endpoints"][0].get("interval", "15s")).rstrip("s"))
    if (job := find("ScaledJob")) is not None:
        pod = job["spec"]["jobTargetRef"]["template"]["spec"]
        container = pod["containers"][0]
        return PoolConfig(
            name=pool, queues=env_value(container, "JOBENGINE_QUEUES").split(","), mode="scaledJob",
            drain=float(env_value(container, "JOBENGINE_DRAIN_SECONDS")), grace=pod["terminationGracePeriodSeconds"],
            deletion_cost=False, min_replicas=job["spec"].get("minReplicaCount", 0),
            max_replicas=job["spec"].get("maxReplicaCount", 100), polling=job["spec"].get("pollingInterval", 30),
            metrics=[trigger_metric(t) for t in job["spec"]["triggers"]],
            max_jobs_per_pod=int(env_value(container, "JOBENGINE_MAX_JOBS") or 0),
            idle_exit=float(env_value(container, "JOBENGINE_IDLE_EXIT_SECONDS") or 30), scrape=scrape,
        )
    deployment = find("Deployment")
    scaled = find("ScaledObject")
    hpa = find("HorizontalPodAutoscaler")
    if deployment is None or (scaled is None and hpa is None):
        raise ValueError(f"pool {pool}: the model needs a Deployment with a KEDA ScaledObject or an HPA")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if scaled is None and hpa is not None:
        return cpu_pool(pool, pod, container, hpa["spec"])
    spec = scaled["spec"]
    advanced = spec.get("advanced", {})
    behavior = advanced.get("horizontalPodAutoscalerConfig", {}).get("behavior")
    modifiers = advanced.get("scalingModifiers") or {}
    return PoolConfig(
        name=pool, queues=env_value(container, "JOBENGINE_QUEUES").split(","), mode="deployment",
        drain=float(env_value(container, "JOBENGINE_DRAIN_SECONDS")), grace=pod["terminationGracePeriodSeconds"],
        deletion_cost=env_value(container, "JOBENGINE_POD_DELETION_COST") == "on",
        min_replicas=spec.get("minReplicaCount", 0), max_replicas=spec.get("maxReplicaCount", 100),
        polling=spec.get("pollingInterval", 30), cooldown=spec.get("cooldownPeriod", 300),
        metrics=[trigger_metric(t) for t in spec["triggers"]],
        formula=modifiers.get("formula"), formula_target=float(modifiers.get("target", 1)),
        formula_activation=float(modifiers.get("activationTarget", 0)),
        up=hpa_rules(behavior, "scaleUp"), down=hpa_rules(behavior, "scaleDown"), scrape=scrape,
    )


def cpu_pool(pool: str, pod: dict[str, Any], container: dict[str, Any], spec: dict[str, Any]) -> PoolConfig:
    """The HPA fallback (keda.enabled false): a CPU Resource metric, no backlog."""
    (metric,) = spec["metrics"]
    request = str(container["resources"]["requests"]["cpu"])
    return PoolConfig(
        name=pool, queues=env_value(container, "JOBENGINE_QUEUES").split(","), mode="deployment",
        drain=float(env_value(container, "JOBENGINE_DRAIN_SECONDS")), grace=pod["terminationGracePeriodSeconds"],
        deletion_cost=env_value(container, "JOBENGINE_POD_DELETION_COST") == "on",
        min_replicas=spec["minReplicas"], max_replicas=spec["maxReplicas"],
        up=hpa_rules(spec.get("behavior"), "scaleUp"), down=hpa_rules(spec.get("behavior"), "scaleDown"),
        cpu_target=float(metric["resource"]["target"]["averageUtilization"]),
        cpu_request=float(request[:-1]) / 1000 if request.endswith("m") else float(request),
    )


# ---------------- workload traces ----------------

@dataclass
class Job:
    id: int
    queue: str
    arrival: float
    duration: float
    started: float | None = None  # start of the run that finished
    ended: float | None = None
    interruptions: int = 0


def trace_steady(rng: random.Random, seconds: int) -> list[Job]:
    """1.5 jobs/s, Poisson, of about 4 s (log-normal)."""
    return poisson(rng, seconds, {"default": 1.5}, lambda q: rng.lognormvariate(math.log(3.5), 0.5))


def trace_bursty(rng: random.Random, seconds: int) -> list[Job]:
    """A fan-out of 300 jobs of 10 to 40 s every 10 minutes over a trickle of short ones."""
    jobs = poisson(rng, seconds, {"default": 0.2}, lambda q: rng.uniform(2, 8))
    for burst in range(60, seconds - 300, 600):
        jobs += [Job(0, "default", burst, rng.uniform(10, 40)) for _ in range(300)]
    return renumber(jobs)


def trace_bursty_short(rng: random.Random, seconds: int) -> list[Job]:
    """The bursty trace with 3 to 10 s jobs in its bursts: work short against a pod's start."""
    jobs = poisson(rng, seconds, {"default": 0.2}, lambda q: rng.uniform(2, 8))
    for burst in range(60, seconds - 300, 600):
        jobs += [Job(0, "default", burst, rng.uniform(3, 10)) for _ in range(300)]
    return renumber(jobs)


def trace_long(rng: random.Random, seconds: int) -> list[Job]:
    """Long jobs (3 to 25 minutes) arriving one every 90 s on average, in waves."""
    jobs = [j for j in poisson(rng, seconds - 1500, {"reports": 1 / 90}, lambda q: rng.uniform(180, 1500))]
    for wave in range(300, seconds - 1800, 1200):
        jobs += [Job(0, "reports", wave, rng.uniform(180, 1500)) for _ in range(6)]
    return renumber(jobs)


def trace_queues(rng: random.Random, seconds: int) -> list[Job]:
    """Three queues whose load swells and ebbs (20-minute period); low holds 30-90 s jobs."""
    durations = {"high": lambda: rng.uniform(1, 3), "default": lambda: rng.uniform(3, 8),
                 "low": lambda: rng.uniform(30, 90)}
    rates = {"high": 0.6, "default": 0.8, "low": 0.08}
    jobs = []
    for t in range(seconds):
        swell = 1 + 0.9 * math.sin(2 * math.pi * t / 1200)
        for queue, rate in rates.items():
            for _ in range(poisson_count(rng, rate * swell)):
                jobs.append(Job(0, queue, t + rng.random(), durations[queue]()))
    return renumber(jobs)


def poisson(rng: random.Random, seconds: int, rates: dict[str, float], duration: Callable[[str], float]) -> list[Job]:
    jobs = []
    for queue, rate in rates.items():
        t = rng.expovariate(rate)
        while t < seconds:
            jobs.append(Job(0, queue, t, duration(queue)))
            t += rng.expovariate(rate)
    return jobs


def poisson_count(rng: random.Random, mean: float) -> int:
    count, p, limit = 0, rng.random(), math.exp(-mean)
    while p > limit:
        count += 1
        p *= rng.random()
    return count


def renumber(jobs: list[Job]) -> list[Job]:
    jobs.sort(key=lambda j: j.arrival)
    for i, job in enumerate(jobs):
        job.id = i
    return jobs


@dataclass(frozen=True)
class Trace:
    name: str
    make: Callable[[random.Random, int], list[Job]]
    seconds: int
    pool: dict[str, Any]  # pool values any chart version accepts
    fixed: dict[str, Any]  # values of the fixed chart only (the declared job timeout, the pool mode)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # more fixed-chart rows: name -> values
    cpu_fallback: dict[str, Any] = field(default_factory=dict)  # values of the KEDA-off row (empty: no such row)


ON = {"autoscaling": {"enabled": True}}  # the KEDA-off row with the pool as it is
TRACES = [
    Trace("steady", trace_steady, 3600, {"queues": ["high", "default", "low"]}, {}, cpu_fallback=ON),
    Trace("bursty", trace_bursty, 3600, {"queues": ["high", "default", "low"], "autoscaling": {"maxReplicas": 30}}, {},
          cpu_fallback=ON),
    Trace("long-jobs", trace_long, 5400,
          {"queues": ["reports"], "autoscaling": {"minReplicas": 0, "maxReplicas": 20, "targetJobsPerReplica": 1}},
          {"autoscaling": {"mode": "scaledJob", "jobTimeoutSeconds": 1800}},
          {"fixed chart, Deployment": {"drainSeconds": 1800, "autoscaling": {"jobTimeoutSeconds": 1800}}},
          cpu_fallback={"drainSeconds": 1800, "autoscaling": {"jobTimeoutSeconds": 1800}}),
    Trace("several-queues", trace_queues, 3600,
          {"queues": ["high", "default", "low"], "autoscaling": {"maxReplicas": 30}}, {}, cpu_fallback=ON),
]


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def chart_values(pool: dict[str, Any], in_flight: bool) -> dict[str, Any]:
    return {"keda": {"enabled": True, "inFlight": {"enabled": in_flight}}, "monitoring": {"enabled": in_flight},
            "workerPools": {"default": {"enabled": False}, "sim": pool}}


# ---------------- the model ----------------

@dataclass
class Pod:
    id: int
    created: float
    ready_at: float
    job: Job | None = None
    job_end: float = 0.0
    terminating_at: float | None = None  # SIGTERM time
    deadline: float = 0.0  # drain deadline
    idle_since: float = 0.0
    cost: int = IDLE_COST  # the annotation as the ReplicaSet controller sees it
    jobs_taken: int = 0
    ended: float | None = None


@dataclass
class Result:
    trace: str
    variant: str
    jobs: int
    done: int
    interrupted: int
    wait_p50: float
    wait_p95: float
    pod_seconds: float
    ideal: float
    max_replicas: int
    series: dict[str, list[float]] = field(repr=False, default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.pod_seconds / self.ideal if self.ideal else float("inf")


class Hpa:
    """The HPA's replica calculation for external AverageValue metrics, with behaviors."""

    def __init__(self, pool: PoolConfig) -> None:
        self.pool = pool
        self.recommendations: list[tuple[float, int]] = []
        self.up_events: list[tuple[float, int]] = []
        self.down_events: list[tuple[float, int]] = []

    def desired(self, values: dict[str, float], current: int) -> int:
        pool = self.pool
        if pool.formula is not None:
            return self.replicas_for(evaluate_formula(pool.formula, values), pool.formula_target, current)
        return max(self.replicas_for(values[m.name], m.target, current) for m in pool.metrics)

    @staticmethod
    def replicas_for(value: float, target: float, current: int) -> int:
        ratio = value / (target * current)
        if abs(ratio - 1.0) <= HPA_TOLERANCE:
            return current
        return math.ceil(value / target)

    def cpu_replicas(self, ready_usage: list[float], unready: int, current: int) -> int:
        """calcPlainMetricReplicas for a Resource utilization metric: unready (starting) pods count as 0 %
        when the ready ones ask for more; terminating pods are not listed at all."""
        pool = self.pool
        assert pool.cpu_target is not None
        if not ready_usage:
            return current
        target = pool.cpu_target / 100

        def ratio(usages: list[float]) -> float:
            return sum(usages) / (pool.cpu_request * len(usages)) / target

        usage_ratio = ratio(ready_usage)
        if not (unready and usage_ratio > 1.0):
            return current if abs(usage_ratio - 1.0) <= HPA_TOLERANCE else math.ceil(usage_ratio * len(ready_usage))
        padded = ready_usage + [0.0] * unready
        new_ratio = ratio(padded)
        if abs(new_ratio - 1.0) <= HPA_TOLERANCE or new_ratio < 1.0:
            return current
        return max(current, math.ceil(new_ratio * len(padded)))

    def step(self, now: float, values: dict[str, float], current: int) -> int:
        return self.apply(now, self.desired(values, current), current)

    def apply(self, now: float, desired: int, current: int) -> int:
        """The HPA's behaviors on a raw recommendation: stabilisation, then the rate policies and bounds."""
        pool = self.pool
        # stabilizeRecommendationWithBehaviors
        up_rec = down_rec = desired
        for t, rec in self.recommendations:
            if t > now - pool.up.stabilization:
                up_rec = min(up_rec, rec)
            if t > now - pool.down.stabilization:
                down_rec = max(down_rec, rec)
        keep = max(pool.up.stabilization, pool.down.stabilization)
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - keep] + [(now, desired)]
        stabilized = max(current, up_rec)
        stabilized = min(stabilized, down_rec)
        # convertDesiredReplicasWithBehaviorRate
        hpa_min = max(1, pool.min_replicas)
        if stabilized > current:
            limit = max(self.limit(pool.up, now, current, up=True), current)
            final = min(stabilized, min(pool.max_replicas, limit))
        elif stabilized < current:
            limit = min(self.limit(pool.down, now, current, up=False), current)
            final = max(stabilized, max(hpa_min, limit))
        else:
            final = stabilized
        final = min(max(final, hpa_min), pool.max_replicas)
        if final > current:
            self.up_events.append((now, final - current))
        elif final < current:
            self.down_events.append((now, current - final))
        return final

    def limit(self, rules: Rules, now: float, current: int, up: bool) -> int:
        if rules.select == "Disabled":
            return current
        pick = (min if rules.select == "Min" else max) if up else (max if rules.select == "Min" else min)
        result: int | None = None
        for kind, value, period in rules.policies:
            added = sum(n for t, n in self.up_events if t > now - period)
            deleted = sum(n for t, n in self.down_events if t > now - period)
            start = current - added + deleted
            if kind == "Pods":
                proposed = start + value if up else start - value
            else:
                proposed = math.ceil(start * (1 + value / 100)) if up else int(start * (1 - value / 100))
            result = proposed if result is None else pick(result, proposed)
        return current if result is None else result


class Simulation:
    def __init__(self, pool: PoolConfig, jobs: list[Job], seconds: int,
                 start_seconds: float = POD_START_SECONDS) -> None:
        self.pool, self.jobs, self.seconds, self.start_seconds = pool, jobs, seconds, start_seconds
        self.queues: dict[str, deque[Job]] = {q: deque() for q in pool.queues}
        self.pods: list[Pod] = []
        self.next_pod = 0
        self.replicas = pool.min_replicas  # Deployment spec.replicas
        self.hpa = Hpa(pool)
        self.in_flight_scraped: dict[str, int] = {q: 0 for q in pool.queues}
        self.last_active = 0.0
        self.now = 0.0
        self.interrupted = 0
        self.series: dict[str, list[float]] = {"t": [], "replicas": [], "pods": [], "busy": [], "waiting": []}
        for _ in range(self.replicas):
            self.add_pod(0.0, started=True)

    # -- pods
    def add_pod(self, now: float, started: bool = False) -> None:
        self.pods.append(Pod(self.next_pod, now, now if started else now + self.start_seconds, idle_since=now))
        self.next_pod += 1

    def live(self) -> list[Pod]:
        return [p for p in self.pods if p.ended is None]

    def serving(self) -> list[Pod]:
        """Pods the Deployment counts: alive and not terminating."""
        return [p for p in self.pods if p.ended is None and p.terminating_at is None]

    def sigterm(self, pod: Pod, now: float) -> None:
        pod.terminating_at = now
        pod.deadline = now + min(self.pool.drain, self.pool.grace)
        if pod.job is None:
            pod.ended = now

    def reconcile(self, now: float) -> None:
        """ReplicaSet: create or delete pods until the serving pods match spec.replicas."""
        serving = self.serving()
        for _ in range(self.replicas - len(serving)):
            self.add_pod(now)
        excess = len(serving) - self.replicas
        if excess > 0:
            ranked = sorted(serving, key=lambda p: (p.ready_at <= now, p.cost if self.pool.deletion_cost else 0,
                                                    -p.created, -p.id))
            for pod in ranked[:excess]:
                self.sigterm(pod, now)

    # -- one second
    def tick(self, now: float) -> None:
        for pod in self.live():
            if pod.job is not None and pod.job_end <= now:
                self.finish(pod, now)
            elif pod.job is not None and pod.terminating_at is not None and now >= pod.deadline:
                self.interrupt(pod, now)
            if pod.terminating_at is not None and pod.job is None and pod.ended is None:
                pod.ended = now
        self.claim(now)
        self.update_costs(now)

    def finish(self, pod: Pod, now: float) -> None:
        job = pod.job
        assert job is not None
        job.ended = pod.job_end
        pod.job, pod.idle_since = None, now
        if self.pool.mode == "scaledJob" and pod.jobs_taken >= self.pool.max_jobs_per_pod > 0:
            pod.ended = now

    def interrupt(self, pod: Pod, now: float) -> None:
        job = pod.job
        assert job is not None
        job.interruptions += 1
        job.started = None
        self.interrupted += 1
        self.queues[job.queue].append(job)  # handed back to the tail of its queue, to run again in full
        pod.job, pod.ended = None, now

    def claim(self, now: float) -> None:
        for pod in self.live():
            if pod.job is not None or pod.terminating_at is not None or pod.ready_at > now:
                continue
            job = next((q.popleft() for name in self.pool.queues if (q := self.queues[name])), None)
            if job is None:
                if self.pool.mode == "scaledJob" and now - max(pod.ready_at, pod.idle_since) >= self.pool.idle_exit:
                    pod.ended = now
                continue
            job.started = now
            pod.job, pod.job_end, pod.jobs_taken = job, now + job.duration, pod.jobs_taken + 1

    def update_costs(self, now: float) -> None:
        """pod-deletion-cost as deletion_cost.py sends it: busy at once, idle after its grace, plus latency."""
        if not self.pool.deletion_cost:
            return
        for pod in self.live():
            if pod.job is not None and now - pod.job.started >= PATCH_LATENCY_SECONDS:  # type: ignore[operator]
                pod.cost = BUSY_COST
            elif pod.job is None and now - pod.idle_since >= IDLE_GRACE_SECONDS + PATCH_LATENCY_SECONDS:
                pod.cost = IDLE_COST

    # -- the autoscalers
    def metric_values(self) -> dict[str, float]:
        values = {}
        for m in self.pool.metrics:
            if m.kind == "waiting":
                values[m.name] = float(sum(len(self.queues[q]) for q in m.queues if q in self.queues))
            else:
                values[m.name] = float(sum(self.in_flight_scraped.get(q, 0) for q in m.queues))
        return values

    def active(self, values: dict[str, float]) -> bool:
        if self.pool.formula is not None:
            return evaluate_formula(self.pool.formula, values) > self.pool.formula_activation
        return any(values[m.name] > m.activation for m in self.pool.metrics)

    def scrape(self) -> None:
        counts = {q: 0 for q in self.pool.queues}
        for pod in self.live():
            if pod.job is not None:
                counts[pod.job.queue] += 1
        self.in_flight_scraped = counts

    def keda_poll(self, now: float) -> None:
        values = self.metric_values()
        if self.active(values):
            self.last_active = now
            if self.replicas == 0:
                self.replicas = 1
        elif self.replicas > 0 and self.pool.min_replicas == 0 and now - self.last_active >= self.pool.cooldown:
            self.replicas = 0

    def hpa_sync(self, now: float) -> None:
        if self.replicas == 0:
            return
        if self.pool.cpu_target is not None:
            serving = self.serving()
            ready = [CPU_BUSY_CORES if p.job is not None else CPU_IDLE_CORES for p in serving if p.ready_at <= now]
            desired = self.hpa.cpu_replicas(ready, len(serving) - len(ready), self.replicas)
            self.replicas = self.hpa.apply(now, desired, self.replicas)
        else:
            self.replicas = self.hpa.step(now, self.metric_values(), self.replicas)

    def scaled_job_poll(self, now: float) -> None:
        """KEDA ScaledJob, accurate strategy, multipleScalersCalculation sum."""
        queue_length = sum(len(self.queues[q]) for m in self.pool.metrics for q in m.queues)
        target = self.pool.metrics[0].target
        max_scale = min(self.pool.max_replicas, math.ceil(queue_length / target))
        live = self.live()
        running = len(live)
        pending = sum(1 for p in live if p.ready_at > now)
        if max_scale + running > self.pool.max_replicas:
            create = self.pool.max_replicas - running
        else:
            create = max_scale - pending
        for _ in range(max(0, create)):
            self.add_pod(now)

    def run(self) -> None:
        arrivals = deque(sorted(self.jobs, key=lambda j: j.arrival))
        end = self.seconds
        for second in range(end + 10_000):
            now = self.now = float(second)
            while arrivals and arrivals[0].arrival <= now:
                job = arrivals.popleft()
                self.queues[job.queue].append(job)
            self.tick(now)
            if second % self.pool.scrape == 0:
                self.scrape()
            if self.pool.mode == "scaledJob":
                if second % self.pool.polling == 0:
                    self.scaled_job_poll(now)
            else:
                if second % self.pool.polling == 0 and self.pool.cpu_target is None:
                    self.keda_poll(now)
                if second % HPA_SYNC_SECONDS == 0:
                    self.hpa_sync(now)
                self.reconcile(now)
            self.record(now)
            if second >= end and self.settled(arrivals):
                break

    def settled(self, arrivals: deque[Job]) -> bool:
        """Every job ended and the pool is back at its minimum: nothing more to see."""
        return not arrivals and all(j.ended is not None for j in self.jobs) \
            and len(self.live()) <= self.pool.min_replicas

    def record(self, now: float) -> None:
        live = self.live()
        if int(now) % 5 == 0:
            s = self.series
            s["t"].append(now)
            s["replicas"].append(self.replicas if self.pool.mode == "deployment" else len(live))
            s["pods"].append(len(live))
            s["busy"].append(sum(1 for p in live if p.job is not None))
            s["waiting"].append(sum(len(q) for q in self.queues.values()))

    def result(self, trace: str, variant: str) -> Result:
        done = [j for j in self.jobs if j.ended is not None]
        waits = sorted(j.started - j.arrival for j in done if j.started is not None)  # type: ignore[operator]
        pod_seconds = sum(((p.ended if p.ended is not None else self.now) - p.created) for p in self.pods)
        return Result(
            trace=trace, variant=variant, jobs=len(self.jobs), done=len(done), interrupted=self.interrupted,
            wait_p50=percentile(waits, 0.5), wait_p95=percentile(waits, 0.95), pod_seconds=pod_seconds,
            ideal=sum(j.duration for j in self.jobs), max_replicas=int(max(self.series["pods"], default=0)),
            series=self.series,
        )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


# ---------------- the comparison ----------------

@dataclass(frozen=True)
class Variant:
    name: str
    chart: str  # "fixed" (this tree) or "base" (BASE_COMMIT)
    in_flight: bool


CPU_VARIANT = "fixed chart, KEDA off (CPU HPA)"
VARIANTS = [
    Variant("today: KEDA, waiting only", "base", False),
    Variant("today: KEDA + inFlight", "base", True),
    Variant("fixed chart", "fixed", True),
]


def simulate(trace: Trace, chart: Path, values: dict[str, Any], variant: str, seconds: int | None = None,
             seed: int = 15, helm: str | None = None) -> Result:
    pool = pool_from_objects(render(chart, values, helm), "sim")
    length = seconds or trace.seconds
    jobs = trace.make(random.Random(seed), length)
    sim = Simulation(pool, jobs, length)
    sim.run()
    return sim.result(trace.name, variant)


def run_all(seconds: int | None = None, traces: list[Trace] | None = None) -> list[Result]:
    helm = find_helm()
    results = []
    with base_chart() as base:
        for trace in traces or TRACES:
            for variant in VARIANTS:
                chart = CHART if variant.chart == "fixed" else base
                pool = merge(trace.pool, trace.fixed) if variant.chart == "fixed" else trace.pool
                results.append(simulate(trace, chart, chart_values(pool, variant.in_flight), variant.name,
                                        seconds, helm=helm))
            for name, values in trace.extra.items():
                pool = merge(trace.pool, values)
                results.append(simulate(trace, CHART, chart_values(pool, True), name, seconds, helm=helm))
            if trace.cpu_fallback:
                pool = merge(merge(trace.pool, {"autoscaling": {"minReplicas": 1}}), trace.cpu_fallback)
                values = chart_values(pool, False) | {"keda": {"enabled": False, "inFlight": {"enabled": False}}}
                results.append(simulate(trace, CHART, values, CPU_VARIANT, seconds, helm=helm))
    return results


def ablation() -> list[Result]:
    """What each part buys: the fixed chart with one protection taken away at a time (drainSeconds 25
    below the jobs, so the drain rule does not hide the others), the old 120 s window, short bursts."""
    helm = find_helm()
    blind = {"drainSeconds": 25, "autoscaling": {"mode": "deployment", "minReplicas": 1, "allowInterruptingJobs": True}}
    no_cost = merge(blind, {"autoscaling": {"podDeletionCost": {"enabled": False}}})
    rows = []
    for name in ("long-jobs", "several-queues"):
        trace = next(t for t in TRACES if t.name == name)
        for label, over, in_flight in [("drain 25 s: running counted, deletion cost on", blind, True),
                                       ("drain 25 s: running counted, deletion cost off", no_cost, True),
                                       ("drain 25 s: waiting only, deletion cost on", blind, False)]:
            rows.append(simulate(trace, CHART, chart_values(merge(trace.pool, over), in_flight), label, helm=helm))
    steady = TRACES[0]
    window = merge(steady.pool, {"autoscaling": {"scaleDownStabilizationSeconds": 120}})
    rows.append(simulate(steady, CHART, chart_values(window, True), "fixed chart, 120 s window", helm=helm))
    short = Trace("bursty, 3-10 s jobs", trace_bursty_short, 3600, TRACES[1].pool, {})
    rows.append(simulate(short, CHART, chart_values(short.pool, True), "fixed chart", helm=helm))
    return rows


def table(results: list[Result]) -> str:
    head = ("| trace | chart | jobs | interrupted | wait p50 s | wait p95 s | pod-s / ideal | max pods |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = [f"| {r.trace} | {r.variant} | {r.jobs} | {r.interrupted} | {r.wait_p50:.1f} | {r.wait_p95:.1f} | "
            f"{r.pod_seconds:,.0f} / {r.ideal:,.0f} = {r.ratio:.2f}x | {r.max_replicas} |" for r in results]
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, help="shorten every trace to this many seconds")
    parser.add_argument("--json", default=str(ROOT / ".run/autoscale/results.json"))
    parser.add_argument("--ablation", action="store_true", help="print what each protection buys, then exit")
    args = parser.parse_args(argv)
    if args.ablation:
        print(table(ablation()))
        return 0
    results = run_all(args.seconds)
    print(table(results))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps([r.__dict__ | {"ratio": r.ratio} for r in results]))
    print(f"\nseries: {args.json} (plot: make autoscale-plot)")
    fixed = [r for r in results if r.variant.startswith("fixed chart") and r.variant != CPU_VARIANT]
    ok = all(r.interrupted == 0 and r.ratio <= 1.5 and r.done == r.jobs for r in fixed)
    ok = ok and all(r.interrupted == 0 for r in results if r.variant == CPU_VARIANT)
    print("PASS: fixed chart, 0 interrupted jobs in every row, pod-seconds <= 1.5x ideal with KEDA" if ok
          else "FAIL: the fixed chart interrupted jobs or used more than 1.5x the ideal pod-seconds")
    today = sum(r.interrupted for r in results if r.variant.startswith("today"))
    print(f"today's chart ({BASE_COMMIT}): {today} interrupted runs over all traces"
          + ("" if today else ": FAIL, the traces no longer show the failure they are meant to show"))
    return 0 if ok and today else 1


if __name__ == "__main__":
    sys.exit(main())
