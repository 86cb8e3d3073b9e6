"""Typed use: a job type's declaration (the catalog's JobType, or anything with `name`, `input_model` and
`result_model`) turns a payload model into JSON and a result into its model. Nothing here imports the
server's packages: a declaration is recognised by its attributes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel


@runtime_checkable
class JobSpec(Protocol):
    """What the client needs of a job type declaration (jobengine.catalog.JobType has it)."""

    name: str
    input_model: type[BaseModel]
    result_model: type[BaseModel]


JobTypeRef = str | JobSpec
Payload = BaseModel | Mapping[str, Any] | None


def type_name(job_type: JobTypeRef) -> str:
    return job_type if isinstance(job_type, str) else job_type.name


def result_model(job_type: JobTypeRef) -> type[BaseModel] | None:
    return None if isinstance(job_type, str) else job_type.result_model


def payload_json(job_type: JobTypeRef, payload: Payload) -> dict[str, Any]:
    """The payload as JSON data. With a declaration, a dict is validated by its input model first (a bad field
    fails here, as pydantic.ValidationError, before any request) and a model instance must be of that model."""
    if not isinstance(job_type, str):
        model = job_type.input_model
        if payload is None:
            payload = {}
        if isinstance(payload, Mapping):
            payload = model.model_validate(dict(payload))
        elif not isinstance(payload, model):
            raise TypeError(f"payload of {job_type.name!r} must be a {model.__name__} or a dict, "
                            f"not {type(payload).__name__}")
    if payload is None:
        return {}
    if isinstance(payload, BaseModel):
        return payload.model_dump(mode="json", exclude_unset=True)
    return dict(payload)


def options_json(*, queue: str | None = None, delay_seconds: float | None = None, run_at: datetime | None = None,
                 timeout: int | None = None, retry: Mapping[str, Any] | None = None,
                 result_ttl: int | None = None) -> dict[str, Any]:
    """The submission's optional fields that are set (unset ones take the job type's defaults)."""
    out: dict[str, Any] = {}
    if queue is not None:
        out["queue"] = queue
    if delay_seconds is not None:
        out["delay_seconds"] = float(delay_seconds)
    if run_at is not None:
        out["run_at"] = run_at.isoformat()
    if timeout is not None:
        out["timeout"] = timeout
    if retry is not None:
        out["retry"] = dict(retry)
    if result_ttl is not None:
        out["result_ttl"] = result_ttl
    return out


@dataclass
class NewJob:
    """One job for submit_many. `idempotency_key` defaults to a fresh one, so that a retried batch does not
    queue an item twice."""

    type: JobTypeRef
    payload: Payload = None
    queue: str | None = None
    delay_seconds: float | None = None
    run_at: datetime | None = None
    timeout: int | None = None
    retry: Mapping[str, Any] | None = None
    result_ttl: int | None = None
    idempotency_key: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # fields this version does not name yet

    def to_json(self) -> dict[str, Any]:
        doc = {"type": type_name(self.type), "payload": payload_json(self.type, self.payload)}
        doc.update(options_json(queue=self.queue, delay_seconds=self.delay_seconds, run_at=self.run_at,
                                timeout=self.timeout, retry=self.retry, result_ttl=self.result_ttl))
        doc.update(self.options)
        if self.idempotency_key is not None:
            doc["idempotency_key"] = self.idempotency_key
        return doc
