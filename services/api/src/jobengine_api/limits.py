"""Input limits checked before model validation: nesting depth, string length, payload size per job.

Cheap for the common case: a body shorter than the string limit cannot hold a longer string,
and one with fewer brackets than the depth limit cannot nest deeper, so a small submit costs two
C-level byte counts and no walk. Larger bodies are parsed once with orjson and walked iteratively
(never recursion: a deep document must not exhaust the stack).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from jobengine.catalog import Catalog
from jobengine.settings import Settings

from .problems import Problem, invalid


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int
    max_string: int
    max_payload: int
    type_payload: dict[str, int]  # job types that declare their own max_payload_bytes

    @classmethod
    def build(cls, settings: Settings, catalog: Catalog) -> Limits:
        return cls(settings.max_json_depth, settings.max_string_length, settings.max_payload_bytes,
                   {t.name: t.max_payload_bytes for t in catalog if t.max_payload_bytes is not None})

    def payload_limit(self, job_type: Any) -> int:
        return self.type_payload.get(job_type, self.max_payload) if isinstance(job_type, str) else self.max_payload

    def needs_check(self, body: bytes) -> bool:
        """False when the body is too small to break any limit (the usual submit)."""
        if len(body) <= min(self.max_string, self.max_payload, min(self.type_payload.values(), default=1 << 62)):
            return body.count(b"[") + body.count(b"{") > self.max_depth
        return True

    def check_structure(self, doc: Any, prefix: str) -> None:
        problem = structure_error(doc, self.max_depth, self.max_string)
        if problem is not None:
            field, message = problem
            raise invalid([{"field": prefix + field if field else (prefix.rstrip(".") or "body"),
                            "message": message}], "The body exceeds an input limit.")

    def check_batch_item(self, item: Any) -> None:
        """check_structure and check_job of one item of a batch (field paths relative to the item), skipped
        when its compact JSON is too small to break a limit (the usual item: one C-level dumps and two byte
        counts)."""
        if self.needs_check(orjson.dumps(item)):
            self.check_structure(item, "")
            self.check_job(item)

    def check_job(self, item: Any, prefix: str = "") -> None:
        """Payload size of one job (a dict with type and payload), in bytes of its compact JSON."""
        if not isinstance(item, dict) or "payload" not in item:
            return
        limit = self.payload_limit(item.get("type"))
        size = len(orjson.dumps(item["payload"]))
        if size > limit:
            raise payload_too_large(prefix + "payload", size, limit)


def payload_too_large(field: str, size: int, limit: int) -> Problem:
    return Problem(413, "payload-too-large",
                   f"The payload is {size} bytes of JSON; this job type takes at most {limit}.",
                   title="Content Too Large", errors=[{"field": field, "message": f"at most {limit} bytes"}])


def structure_error(doc: Any, max_depth: int, max_string: int) -> tuple[str, str] | None:
    """(dotted path, message) of the first value nested deeper than max_depth or string longer than
    max_string (object keys included); None when the document is within both."""
    stack: list[tuple[Any, int, str]] = [(doc, 1, "")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            if len(value) > max_string:
                return path, f"strings are limited to {max_string} characters"
            continue
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if depth > max_depth:
            return path, f"nesting is limited to {max_depth} levels"
        for key, child in items:
            child_path = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and len(key) > max_string:
                return child_path, f"object keys are limited to {max_string} characters"
            if isinstance(child, (dict, list, str)):
                stack.append((child, depth + 1, child_path))
    return None
