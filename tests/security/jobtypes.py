"""A job type with its own payload bound (loaded with JOBENGINE_JOB_TYPE_MODULES)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from jobengine.catalog import JobType


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = ""
    data: Any = None


def note(payload: Note) -> Note:
    return payload


JOB_TYPES = [JobType(name="note", input_model=Note, result_model=Note, function="tests.security.jobtypes.note",
                     max_payload_bytes=100)]
