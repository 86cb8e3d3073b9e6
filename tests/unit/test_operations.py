"""Bulk operations' pure parts: which registries an operation walks, and how its hash reads back."""

from __future__ import annotations

from jobengine_api.models import OperationRequest
from jobengine_api.operations import operation_view, sources

QUEUES = ["high", "default"]


def request(action: str, **flt: object) -> OperationRequest:
    return OperationRequest.model_validate({"action": action, "filter": flt})


def test_each_action_walks_its_registries() -> None:
    assert sources(request("retry"), QUEUES) == ["rq:failed:default", "rq:failed:high"]
    # a queue's scheduled jobs before its list: one that becomes due meanwhile was seen in the registry
    assert sources(request("cancel", queue="high"), QUEUES) == ["rq:scheduled:high", "rq:queue:high"]
    assert sources(request("delete", queue="high"), QUEUES) == ["rq:finished:high", "rq:failed:high",
                                                                 "rq:canceled:high"]
    assert sources(request("delete", status=["canceled"]), QUEUES) == ["rq:canceled:default", "rq:canceled:high"]


def test_progress_counts_registries_walked_and_the_position_in_the_current_one() -> None:
    raw = {b"action": b"retry", b"filter": b'{"type":"x"}', b"state": b"running", b"sources": b"a,b",
           b"si": b"2", b"pos": b"25", b"size": b"100", b"examined": b"125", b"matched": b"120", b"skipped": b"5",
           b"created_at": b"2026-12-04T16:00:00.000000Z", b"updated_at": b"", b"ended_at": b""}
    view = operation_view("i", raw)
    assert view["progress"] == 0.625 and view["counts"] == {"examined": 125, "matched": 120, "skipped": 5}
    assert view["filter"] == {"type": "x"} and view["ended_at"] is None
    assert operation_view("i", {**raw, b"state": b"done"})["progress"] == 1.0
    assert operation_view("i", {**raw, b"sources": b""})["progress"] == 1.0  # nothing to walk
