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
from ..models import Job, JobSummary, JobTypeInfo, Operation, QueueStats, Schedule, ScheduleDetail, WorkerInfo

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
    table.add_column("PAUSED")
    for q in items:
        paused = ("[yellow]refusing[/]" if q.refuse_submits else "[yellow]yes[/]") if q.paused else "no"
        table.add_row(*(str(getattr(q, name)) for name in columns), paused)
    return table


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def workers_table(items: list[WorkerInfo]) -> Table:
    table = Table(box=None, header_style="bold")
    for name in ("NAME", "POOL", "QUEUES", "STATE", "CURRENT JOB", "SINCE (UTC)", "HEARTBEAT", "DONE", "FAILED",
                 "MEMORY"):
        table.add_column(name, justify="right" if name in ("HEARTBEAT", "DONE", "FAILED", "MEMORY") else "left",
                         overflow="fold")
    for w in items:
        job = w.current_job
        state = f"[cyan]{w.state}[/]" if w.state == "busy" else w.state
        table.add_row(escape(w.name), escape(w.pool or "-"), ",".join(w.queues), state, job.id if job else "-",
                      when(job.since, True) if job else "-", age(w.heartbeat_age_seconds), str(w.jobs_finished),
                      str(w.jobs_failed), size(w.rss_bytes))
    return table


OP_STYLE = {"done": "green", "failed": "red", "canceled": "yellow", "running": "cyan", "pending": "blue"}


def op_state(state: str) -> str:
    style = OP_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


def filter_text(f: dict[str, Any]) -> str:
    return " ".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in f.items() if v is not None) or "-"


def operations_table(items: list[Operation]) -> Table:
    table = Table(box=None, header_style="bold")
    for name in ("ID", "ACTION", "STATE", "PROGRESS", "MATCHED", "SKIPPED", "EXAMINED", "CREATED (UTC)", "FILTER"):
        table.add_column(name, no_wrap=name == "ID", overflow="fold",
                         justify="right" if name in ("PROGRESS", "MATCHED", "SKIPPED", "EXAMINED") else "left")
    for op in items:
        table.add_row(op.id, op.action, op_state(op.state), f"{op.progress:.0%}", str(op.counts.matched),
                      str(op.counts.skipped), str(op.counts.examined), when(op.created_at, True),
                      escape(filter_text(op.filter)))
    return table


def show_operation(op: Operation) -> None:
    out.print(f"{op.id} {op.action} {op_state(op.state)}: matched {op.counts.matched}, skipped {op.counts.skipped}, "
              f"examined {op.counts.examined} ({op.progress:.0%})")
    if op.error:
        out.print(f"[red]{escape(op.error)}[/]")


class OperationView:
    """A live progress bar on stderr of a bulk operation: the share of registries walked, and its counts."""

    def __init__(self, op: Operation) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn(f"[bold]{op.action}[/]"),
                                 TextColumn("{task.fields[state]}"), BarColumn(), TaskProgressColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.description}"), console=err,
                                 refresh_per_second=8)
        self.task: TaskID = self.progress.add_task("", total=100, state=op_state(op.state))

    def __enter__(self) -> OperationView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, op: Operation) -> None:
        c = op.counts
        self.progress.update(self.task, completed=100 if op.state == "done" else op.progress * 100,
                             state=op_state(op.state),
                             description=f"matched {c.matched}, skipped {c.skipped}, examined {c.examined}")
        if op.done:
            self.progress.refresh()


def rule_text(s: Schedule) -> str:
    if s.cron is not None:
        return f"cron {s.cron}" + (f" ({s.timezone})" if s.timezone != "UTC" else "")
    return f"every {s.interval_seconds}s"


SCHEDULE_STYLE = {"active": "green", "paused": "yellow", "broken": "red", "ended": "dim"}


def schedule_state(state: str) -> str:
    style = SCHEDULE_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


def schedule_line(s: Schedule) -> str:
    nxt = f", next {when(s.next_run_at)} UTC" if s.next_run_at else ""
    return f"{escape(s.name)} {schedule_state(s.state)}: {escape(s.type)} {escape(rule_text(s))}{nxt}"


def schedules_table(items: list[Schedule]) -> Table:
    table = Table(box=None, header_style="bold")
    for name in ("NAME", "TYPE", "RULE", "STATE", "NEXT RUN (UTC)", "FIRES", "SKIPPED", "LAST JOB"):
        table.add_column(name, overflow="fold", justify="right" if name in ("FIRES", "SKIPPED") else "left")
    for s in items:
        table.add_row(escape(s.name), escape(s.type), escape(rule_text(s)), schedule_state(s.state),
                      when(s.next_run_at, True), str(s.fires), str(s.skipped), s.last_job_id or "-")
    return table


def show_schedule(s: ScheduleDetail) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("name", escape(s.name))
    grid.add_row("type", escape(s.type))
    grid.add_row("rule", escape(rule_text(s)))
    grid.add_row("state", schedule_state(s.state) + (f" [red]{escape(s.error)}[/]" if s.error else ""))
    grid.add_row("queue", s.queue or "(the type's)")
    grid.add_row("overlap", s.overlap)
    grid.add_row("catch up", s.catch_up)
    grid.add_row("source", s.source)
    grid.add_row("fires", f"{s.fires} (skipped {s.skipped}, refused {s.refused})")
    grid.add_row("payload", escape(json.dumps(s.payload)))
    out.print(grid)
    nxt = Table(title="next runs (UTC)", title_justify="left", box=None, header_style="bold")
    nxt.add_column("#", justify="right")
    nxt.add_column("TICK")
    for i, tick in enumerate(s.next_runs, 1):
        nxt.add_row(str(i), when(tick))
    out.print(nxt)
    runs = Table(title="last runs (UTC)", title_justify="left", box=None, header_style="bold")
    for name in ("TICK", "AT", "OUTCOME", "JOB", "JOB STATUS"):
        runs.add_column(name, overflow="fold")
    for run in s.runs:
        outcome = run.outcome + (f" x{run.count}" if run.count else "")
        runs.add_row(when(run.tick), when(run.at), outcome, run.job_id or "-",
                     status_text(run.job_status) if run.job_status else "-")
    out.print(runs)


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
