"""A small SSE client for tests: reads an event stream in a thread into a list (httpx streaming)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SseEvent:
    id: str | None
    event: str | None
    data: dict[str, Any]


@dataclass
class SseReader:
    """GET url as an event stream; `events` fills as they come, `comments` counts heartbeat lines, `ended` is
    set when the server closed the stream."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: list[SseEvent] = field(default_factory=list)
    comments: int = 0
    status: int = 0
    ended: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)
    _stop: bool = False

    def start(self) -> SseReader:
        threading.Thread(target=self._run, daemon=True).start()
        assert self.opened.wait(15), "the event stream did not open"
        return self

    def close(self) -> None:
        self._stop = True

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(30, read=60)) as client, \
                    client.stream("GET", self.url, headers={"Accept": "text/event-stream", **self.headers}) as resp:
                self.status = resp.status_code
                self.opened.set()
                if resp.status_code != 200:
                    return
                current: dict[str, str] = {}
                data: list[str] = []
                for line in resp.iter_lines():
                    if self._stop:
                        return
                    if line == "":
                        if data:
                            self.events.append(SseEvent(current.get("id"), current.get("event"),
                                                        json.loads("\n".join(data))))
                        current, data = {}, []
                    elif line.startswith(":"):
                        self.comments += 1
                    else:
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if name == "data":
                            data.append(value)
                        else:
                            current[name] = value
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def types(self, job_id: str | None = None) -> list[str]:
        return [e.data["type"] for e in list(self.events) if job_id is None or e.data["job_id"] == job_id]


def event_ids(r: Any, key: str) -> list[str]:
    """The ids of the events in a tenant's stream (`r`: a redis.Redis): event n of entry <ms>-<seq> is
    <ms>-<seq>-<n>, one event a line of the entry's field e (lua/_events.lua)."""
    return [f"{entry_id.decode()}-{n}" for entry_id, fields in r.xrange(key)
            for n in range(len(fields[b"e"].split(b"\n")))]
