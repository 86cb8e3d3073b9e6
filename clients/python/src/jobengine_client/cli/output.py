"""How the CLI shows things: JSON on stdout for scripts (--json), rich tables and a live progress bar for
people. Messages and the progress bar go to stderr, so stdout stays the command's answer."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.json import JSON
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import ApiError, JobengineError
from ..models import Job, JobSummary, JobTypeInfo, QueueStats

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

STATUS_STYLE = {"finished": "green", "failed": "red", "canceled": "yellow", "canceling": "yellow",
                "started": "cyan", "queued": "blue", "scheduled": "magenta", "deferred": "magenta"}


def as_data(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [as_data(v) for v in value]
    if isinstance(value, dict):
        return {k: as_data(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(as_data(value), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def status_text(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def when(value: datetime | None, short: bool = False) -> str:
    if value is None:
        return "-"
    return value.strftime("%m-%d %H:%M:%S" if short else "%Y-%m-%d %H:%M:%S")


def show_error(exc: JobengineError, as_json: bool) -> None:
    if as_json and isinstance(exc, ApiError):
        err.file.write(json.dumps(exc.to_dict()) + "\n")
        return
    if isinstance(exc, ApiError):
        err.print(f"[red]error:[/] {exc.status} {escape(exc.title)}: {escape(exc.detail)}")
        for item in exc.errors:
            err.print(f"  [bold]{escape(str(item.get('field')))}[/]: {escape(str(item.get('message')))}")
    else:
        err.print(f"[red]error:[/] {escape(str(exc))}")


def show_job(job: Job[Any]) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("id", job.id)
    grid.add_row("type", job.type)
    grid.add_row("queue", job.queue)
    grid.add_row("status", status_text(job.status))
    grid.add_row("attempts", f"{job.attempts}" + (f" ({job.retries_left} retries left)"
                                                  if job.retries_left is not None else ""))
    for label, value in (("created", job.created_at), ("scheduled for", job.scheduled_for),
                         ("started", job.started_at), ("ended", job.ended_at)):
        if value is not None:
            grid.add_row(label, when(value))
    if job.progress is not None and job.progress.fraction is not None:
        grid.add_row("progress", escape(f"{job.progress.fraction:.0%} {job.progress.message or ''}".rstrip()))
    if job.worker:
        grid.add_row("worker", job.worker)
    if job.error:  # a traceback: its last line says what happened (--json has all of it)
        lines = [line for line in job.error.strip().splitlines() if line.strip()]
        grid.add_row("error", f"[red]{escape(lines[-1] if lines else job.error)}[/]")
    out.print(grid)
    if job.result is not None:
        out.print("[bold]result[/]")
        out.print(JSON.from_data(as_data(job.result)))


def jobs_table(items: list[JobSummary]) -> Table:
    wide = out.width >= 100  # ENDED too when there is room; an id is never cut (it is what one copies)
    table = Table(box=None, header_style="bold", padding=(0, 1), pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=32)
    for name in ("TYPE", "QUEUE", "STATUS"):
        table.add_column(name, overflow="fold")
    table.add_column("CREATED (UTC)", no_wrap=True)
    if wide:
        table.add_column("ENDED (UTC)", no_wrap=True)
    for job in items:
        row = [job.id, escape(job.type), job.queue, status_text(job.status), when(job.created_at, True)]
        table.add_row(*row, *([when(job.ended_at, True)] if wide else []))
    return table


def types_table(items: list[JobTypeInfo]) -> Table:
    table = Table(box=None, header_style="bold")
    for name in ("NAME", "QUEUE", "TIMEOUT", "RETRIES", "DESCRIPTION"):
        table.add_column(name)
    for t in items:
        table.add_row(escape(t.name), t.queue, f"{t.timeout}s", str(t.retry.get("max_retries", "-")),
                      escape(t.description))
    return table


def queues_table(items: list[QueueStats]) -> Table:
    columns = ("name", "depth", "in_flight", "scheduled", "failed", "finished", "canceled", "workers")
    table = Table(box=None, header_style="bold")
    for name in columns:
        table.add_column(name.upper().replace("_", " "), justify="left" if name == "name" else "right")
    for q in items:
        table.add_row(*(str(getattr(q, name)) for name in columns))
    return table


class ProgressView:
    """A live progress bar on stderr fed by the job's own reports (current_job().progress(fraction, message)):
    a pulsing bar until the first fraction arrives; the message is the job's."""

    def __init__(self, job_id: str, job_type: str) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[job_type]}[/]"),
                                 TextColumn("{task.fields[status]}"), BarColumn(), TaskProgressColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.description}"), console=err,
                                 refresh_per_second=8)
        self.task: TaskID = self.progress.add_task("", total=None, job_type=job_type, status=status_text("queued"))
        self.job_id = job_id

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, job: Job[Any]) -> None:
        fields: dict[str, Any] = {"status": status_text(job.status)}
        fraction = job.progress.fraction if job.progress else None
        if job.status == "finished":
            fields.update(total=100, completed=100)
        elif fraction is not None:
            fields.update(total=100, completed=fraction * 100)
        if job.progress and job.progress.message:
            fields["description"] = escape(job.progress.message)
        self.progress.update(self.task, **fields)
        if job.done:
            self.progress.refresh()
