"""The payload of `jobengine submit`: a JSON object given inline, from @file (@- for stdin), and --set flags."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


class PayloadError(ValueError):
    """A payload argument that cannot be read."""


def _load(source: str) -> Any:
    if source.startswith("@"):
        name = source[1:]
        try:
            text = sys.stdin.read() if name == "-" else Path(name).expanduser().read_text()
        except OSError as exc:
            raise PayloadError(f"cannot read {name}: {exc.strerror or exc}") from exc
        where = "stdin" if name == "-" else name
    else:
        text, where = source, "the payload argument"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"{where} is not valid JSON: {exc}") from exc


def _value(text: str) -> Any:
    """A --set value: JSON when it parses (10, 2.5, true, null, [1,2], {"a":1}, "quoted"), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_object(source: str, what: str) -> dict[str, Any]:
    """A JSON object given inline or as @file (@- stdin)."""
    value = _load(source)
    if not isinstance(value, dict):
        raise PayloadError(f"{what} must be a JSON object")
    return value


def build(source: str | None, assignments: list[str], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payload object: `source` (JSON or @file; else `base`), then each `key=value` (dotted keys make nested
    objects)."""
    payload = _load(source) if source else json.loads(json.dumps(base or {}))
    if not isinstance(payload, dict):
        raise PayloadError("the payload must be a JSON object")
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise PayloadError(f"--set {item!r}: expected key=value")
        *parents, last = key.split(".")
        target = payload
        for part in parents:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise PayloadError(f"--set {item!r}: {part!r} is not an object")
            target = child
        target[last] = _value(raw)
    return payload


def parse_time(text: str, flag: str = "--run-at") -> datetime:
    """An RFC 3339 / ISO 8601 time (a trailing Z included); the API takes one without offset as UTC."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{flag} {text!r}: not an RFC 3339 time such as 2026-12-24T18:00:00Z") from None
