"""The worker's pod-deletion-cost module against a stand-in Kubernetes API on 127.0.0.1: the exact
PATCH (path, content type, body, bearer token from the token file), busy sent at once, idle only
after the grace, retries after a server error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobengine_worker.deletion_cost import (
    ANNOTATION,
    BUSY_COST,
    IDLE_COST,
    DeletionCostConfig,
    PodDeletionCost,
    send_patch,
)
from tests.support.kube_api import KubeApiStandIn, Seen

WAIT = 10.0  # deadline of each wait for a request: a failure, never a pause


@pytest.fixture
def api() -> Iterator[KubeApiStandIn]:
    with KubeApiStandIn() as server:
        yield server


@pytest.fixture
def config(api: KubeApiStandIn, tmp_path: Path) -> DeletionCostConfig:
    token = tmp_path / "token"
    token.write_text("tok-1\n")
    return DeletionCostConfig.from_env({
        "JOBENGINE_POD_DELETION_COST": "on", "JOBENGINE_POD_NAME": "rel-jobengine-worker-default-5d9c-x2x7k",
        "JOBENGINE_POD_NAMESPACE": "jobs", "JOBENGINE_KUBERNETES_API_URL": api.url,
        "JOBENGINE_KUBERNETES_TOKEN_FILE": str(token),
    })


def cost_of(seen: Seen) -> str:
    return seen.cost


def test_the_patch_is_a_merge_patch_of_the_own_pods_annotation(config: DeletionCostConfig, api: KubeApiStandIn,
                                                               tmp_path: Path) -> None:
    send_patch(config, BUSY_COST)
    seen = api.seen.get(timeout=WAIT)
    assert seen.method == "PATCH"
    assert seen.path == "/api/v1/namespaces/jobs/pods/rel-jobengine-worker-default-5d9c-x2x7k"
    assert seen.content_type == "application/merge-patch+json"
    assert seen.body == {"metadata": {"annotations": {ANNOTATION: str(BUSY_COST)}}}
    assert seen.authorization == "Bearer tok-1"
    (tmp_path / "token").write_text("tok-2")  # the kubelet rotated the projected token
    send_patch(config, IDLE_COST)
    assert api.seen.get(timeout=WAIT).authorization == "Bearer tok-2"


def test_busy_goes_at_once_idle_after_the_grace_and_a_short_gap_sends_nothing(config: DeletionCostConfig,
                                                                              api: KubeApiStandIn) -> None:
    cost = PodDeletionCost(config, idle_grace=0.5)
    cost.start()
    try:
        cost.set_busy(True)
        assert cost_of(api.seen.get(timeout=WAIT)) == str(BUSY_COST)
        cost.set_busy(False)  # between two jobs: back to busy well within the grace
        cost.set_busy(True)
        cost.set_busy(False)
        assert cost_of(api.seen.get(timeout=WAIT)) == str(IDLE_COST)
        assert api.seen.empty()  # the short gap sent no idle/busy pair
    finally:
        cost.stop()


def test_a_failed_patch_is_retried(config: DeletionCostConfig, api: KubeApiStandIn) -> None:
    api.fail_next = 2
    cost = PodDeletionCost(config, idle_grace=0.1, retry_base=0.01)
    cost.start()
    try:
        cost.set_busy(True)
        costs = [cost_of(api.seen.get(timeout=WAIT)) for _ in range(3)]
        assert costs == [str(BUSY_COST)] * 3  # 500, 500, then accepted
    finally:
        cost.stop()


def test_off_unless_asked_and_clear_when_misconfigured() -> None:
    assert not DeletionCostConfig.from_env({}).enabled
    with pytest.raises(ValueError, match="JOBENGINE_POD_NAME"):
        DeletionCostConfig.from_env({"JOBENGINE_POD_DELETION_COST": "on", "KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    in_cluster = DeletionCostConfig.from_env({
        "JOBENGINE_POD_DELETION_COST": "on", "JOBENGINE_POD_NAME": "p", "JOBENGINE_POD_NAMESPACE": "n",
        "KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443",
    })
    assert in_cluster.api_url == "https://[fd00::1]:443"
    PodDeletionCost(DeletionCostConfig(enabled=False)).start()  # a no-op: no thread, no request
