"""Declared schedules (JOBENGINE_SCHEDULES_FILE): a YAML or JSON list of specs, each with an optional tenant,
upserted by every API process at start. An unchanged spec keeps its next tick and history; a changed one
gets a new version and its next tick computed again; a declared schedule no longer in the file is deleted.
The API refuses PATCH and DELETE of them (they live in the file) but allows pause, resume and trigger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .spec import DeclaredSpec


class DeclaredError(ValueError):
    """The file cannot be read or a spec in it is invalid: the message names the entry and field."""


def parse(text: str, source: str = "schedules file") -> list[DeclaredSpec]:
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError:
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - PyYAML is in the images
            raise DeclaredError(f"{source}: not JSON, and PyYAML is not installed to read YAML") from exc
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DeclaredError(f"{source}: neither JSON nor YAML: {exc}") from None
    if doc is None:
        return []
    if isinstance(doc, dict) and isinstance(doc.get("schedules"), list):
        doc = doc["schedules"]
    if not isinstance(doc, list):
        raise DeclaredError(f"{source}: a list of schedules is required")
    specs: list[DeclaredSpec] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(doc):
        try:
            spec = DeclaredSpec.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "entry"
            raise DeclaredError(f"{source}: schedule {index} ({field}): {err['msg']}") from None
        if (spec.tenant, spec.name) in seen:
            raise DeclaredError(f"{source}: schedule {index}: {spec.tenant}/{spec.name} declared twice")
        seen.add((spec.tenant, spec.name))
        specs.append(spec)
    return specs


def load(path: str) -> list[DeclaredSpec]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DeclaredError(f"{path}: {exc.strerror}") from None
    return parse(text, path)
