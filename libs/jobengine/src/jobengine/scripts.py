"""The Lua scripts that move jobs between states atomically, loaded for a sync or an async client."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

SCRIPT_NAMES = ("enqueue", "claim", "complete", "complete_claim", "recover", "schedule", "cancel", "requeue")


INCLUDE = "--!include "


def source(name: str) -> str:
    """A script's text, with each `--!include <file>` line replaced by lua/<file>.lua (Redis scripts
    cannot load one another: shared functions are inlined)."""
    lines = []
    for line in resources.files("jobengine").joinpath(f"lua/{name}.lua").read_text().splitlines(keepends=True):
        if line.startswith(INCLUDE):
            lines.append(source(line[len(INCLUDE):].split()[0]))
        else:
            lines.append(line)
    return "".join(lines)


@dataclass(frozen=True)
class Scripts:
    """Registered scripts (redis-py Script or AsyncScript objects): EVALSHA, falling back to EVAL."""

    enqueue: Any
    claim: Any
    complete: Any
    complete_claim: Any
    recover: Any
    schedule: Any
    cancel: Any
    requeue: Any

    @classmethod
    def register(cls, client: Any) -> Scripts:
        return cls(**{name: client.register_script(source(name)) for name in SCRIPT_NAMES})
