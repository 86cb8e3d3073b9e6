"""The operator and schedule commands of `jobengine`: workers, queue pause/resume, bulk operations (`bulk`,
`ops`) and `schedules`. Registered on the app by app.py."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..models import Operation
from . import exitcodes, output
from .app import JsonOption, TimeoutOption, _options, app, handles_errors
from .payload import PayloadError, build, load_object, parse_time

queues_app = typer.Typer(help="Queue statistics; pause and resume a queue (admin scope).", no_args_is_help=False)
bulk_app = typer.Typer(help="Bulk actions by filter, run as an operation (admin scope).", no_args_is_help=True)
ops_app = typer.Typer(help="Bulk operations: list, show, stop (admin scope).", no_args_is_help=True)
schedules_app = typer.Typer(help="Cron and interval schedules of your tenant.", no_args_is_help=True)
app.add_typer(queues_app, name="queues")
app.add_typer(bulk_app, name="bulk")
app.add_typer(ops_app, name="ops")
app.add_typer(schedules_app, name="schedules")


def _json(ctx: typer.Context, as_json: bool) -> bool:
    return as_json or _options(ctx).json


# --- workers and queues ---

@app.command()
@handles_errors
def workers(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Live workers: pool, queues, state, current job and since when, heartbeat age, done/failed, memory."""
    with _options(ctx).client() as client:
        found = client.workers()
    if _json(ctx, as_json):
        output.print_json(found)
    else:
        output.out.print(output.workers_table(found))


@queues_app.callback(invoke_without_command=True)
@handles_errors
def queues(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Depth, in-flight, scheduled, failed, finished, canceled, workers and pause state per queue (admin)."""
    if ctx.invoked_subcommand is not None:
        return
    with _options(ctx).client() as client:
        found = client.queues()
    if _json(ctx, as_json):
        output.print_json(found)
    else:
        output.out.print(output.queues_table(found))


def _show_pause(ctx: typer.Context, as_json: bool, view: Any) -> None:
    if _json(ctx, as_json):
        output.print_json(view)
        return
    state = "[yellow]paused[/]" if view.paused else "[green]active[/]"
    note = " (submits refused)" if view.paused and view.refuse_submits else ""
    output.out.print(f"{view.name} {state}{note}")


@queues_app.command("pause")
@handles_errors
def queues_pause(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="A declared queue.")],
    refuse_submits: Annotated[bool, typer.Option("--refuse-submits", help="Refuse submits to it (409) while "
                                                 "paused; default: accept them, they wait.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Pause a queue: workers claim none of its jobs until resumed (running jobs finish)."""
    with _options(ctx).client() as client:
        _show_pause(ctx, as_json, client.pause_queue(name, refuse_submits=refuse_submits))


@queues_app.command("resume")
@handles_errors
def queues_resume(ctx: typer.Context, name: Annotated[str, typer.Argument(help="A declared queue.")],
                  as_json: JsonOption = False) -> None:
    """Resume a paused queue."""
    with _options(ctx).client() as client:
        _show_pause(ctx, as_json, client.resume_queue(name))


# --- bulk operations ---

def _follow(ctx: typer.Context, op: Operation, wait: bool | None, wait_timeout: float | None, as_json: bool) -> None:
    """Show the operation (followed to its end with --wait, a progress bar on a terminal); exit 1 unless done."""
    follow = (not as_json and output.err.is_terminal) if wait is None else wait
    if follow:
        with _options(ctx).client() as client:
            if not as_json and output.err.is_terminal:
                with output.OperationView(op) as view:
                    op = client.wait_operation(op, timeout=wait_timeout, on_progress=view.update,
                                               poll_interval=0.25)
            else:
                op = client.wait_operation(op, timeout=wait_timeout, poll_interval=0.25)
    if as_json:
        output.print_json(op)
    else:
        output.show_operation(op)
    if follow and op.state != "done":
        raise typer.Exit(exitcodes.JOB_FAILED)


def _bulk(ctx: typer.Context, action: str, queue: str | None, job_type: str | None, tenant: str | None,
          status: list[str] | None, created_after: str | None, created_before: str | None, wait: bool | None,
          wait_timeout: float | None, as_json: bool) -> None:
    as_json = _json(ctx, as_json)
    after = parse_time(created_after, "--created-after") if created_after else None
    before = parse_time(created_before, "--created-before") if created_before else None
    with _options(ctx).client() as client:
        op = client.start_operation(action, queue=queue, type=job_type, tenant=tenant, status=status or None,
                                    created_after=after, created_before=before)
    if not as_json:
        output.err.print(f"started operation {op.id} ({action})")
    _follow(ctx, op, wait, wait_timeout, as_json)


QueueFilter = Annotated[str | None, typer.Option("--queue", help="Jobs of this queue (default: all).")]
TypeFilter = Annotated[str | None, typer.Option("--type", help="Jobs of this type.")]
TenantFilter = Annotated[str | None, typer.Option("--tenant", help="Jobs submitted by this tenant.")]
AfterFilter = Annotated[str | None, typer.Option("--created-after", help="Submitted at or after (RFC 3339).")]
BeforeFilter = Annotated[str | None, typer.Option("--created-before", help="Submitted before (RFC 3339).")]
WaitFollow = Annotated[bool | None, typer.Option("--wait/--no-wait", help="Follow the operation to its end, a "
                                                 "progress bar on a terminal; exit 1 unless done \\[default: when "
                                                 "stderr is a terminal and not --json]", show_default=False)]


@bulk_app.command("retry")
@handles_errors
def bulk_retry(ctx: typer.Context, queue: QueueFilter = None, job_type: TypeFilter = None,
               tenant: TenantFilter = None, created_after: AfterFilter = None, created_before: BeforeFilter = None,
               wait: WaitFollow = None, wait_timeout: TimeoutOption = None, as_json: JsonOption = False) -> None:
    """Retry the failed jobs of the filter (fresh retry budget)."""
    _bulk(ctx, "retry", queue, job_type, tenant, None, created_after, created_before, wait, wait_timeout, as_json)


@bulk_app.command("cancel")
@handles_errors
def bulk_cancel(ctx: typer.Context, queue: QueueFilter = None, job_type: TypeFilter = None,
                tenant: TenantFilter = None, created_after: AfterFilter = None, created_before: BeforeFilter = None,
                wait: WaitFollow = None, wait_timeout: TimeoutOption = None, as_json: JsonOption = False) -> None:
    """Cancel the waiting (queued, scheduled) jobs of the filter."""
    _bulk(ctx, "cancel", queue, job_type, tenant, None, created_after, created_before, wait, wait_timeout, as_json)


@bulk_app.command("delete")
@handles_errors
def bulk_delete(
    ctx: typer.Context, queue: QueueFilter = None, job_type: TypeFilter = None, tenant: TenantFilter = None,
    status: Annotated[list[str] | None, typer.Option("--status", help="finished, failed or canceled (repeatable; "
                                                     "default: all three).")] = None,
    created_after: AfterFilter = None, created_before: BeforeFilter = None, wait: WaitFollow = None,
    wait_timeout: TimeoutOption = None, as_json: JsonOption = False,
) -> None:
    """Delete the ended jobs of the filter."""
    _bulk(ctx, "delete", queue, job_type, tenant, status, created_after, created_before, wait, wait_timeout,
          as_json)


@ops_app.command("ls")
@handles_errors
def ops_ls(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The newest bulk operations."""
    with _options(ctx).client() as client:
        found = client.operations()
    if _json(ctx, as_json):
        output.print_json(found)
    else:
        output.out.print(output.operations_table(found))


@ops_app.command("get")
@handles_errors
def ops_get(ctx: typer.Context, op_id: Annotated[str, typer.Argument(metavar="ID")],
            wait: Annotated[bool, typer.Option("--wait", "-w", help="Follow it to its end.")] = False,
            wait_timeout: TimeoutOption = None, as_json: JsonOption = False) -> None:
    """An operation: state, progress and counts."""
    with _options(ctx).client() as client:
        op = client.operation(op_id)
    _follow(ctx, op, wait, wait_timeout, _json(ctx, as_json))


@ops_app.command("cancel")
@handles_errors
def ops_cancel(ctx: typer.Context, op_id: Annotated[str, typer.Argument(metavar="ID")],
               as_json: JsonOption = False) -> None:
    """Stop an operation at its next step (jobs it changed stay changed)."""
    with _options(ctx).client() as client:
        op = client.cancel_operation(op_id)
    output.print_json(op) if _json(ctx, as_json) else output.show_operation(op)


# --- schedules ---

@schedules_app.command("ls")
@handles_errors
def schedules_ls(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Schedules per page.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow the cursors to the last page.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The schedules of your tenant, by name."""
    with _options(ctx).client() as client:
        if all_pages:
            items, next_cursor = list(client.schedules(page_size=limit)), None
        else:
            page = client.schedules_page(limit=limit, cursor=cursor)
            items, next_cursor = page.items, page.next_cursor
    if _json(ctx, as_json):
        output.print_json({"items": items, "next_cursor": next_cursor})
        return
    output.out.print(output.schedules_table(items))
    if next_cursor:
        output.err.print(f"more: jobengine schedules ls --cursor {next_cursor}")


@schedules_app.command("get")
@handles_errors
def schedules_get(ctx: typer.Context, name: Annotated[str, typer.Argument()],
                  next_runs: Annotated[int, typer.Option("--next", min=0, max=50, help="Next ticks shown.")] = 5,
                  as_json: JsonOption = False) -> None:
    """A schedule: its spec, state, next runs and last runs (with their jobs)."""
    with _options(ctx).client() as client:
        found = client.schedule(name, next_runs=next_runs)
    output.print_json(found) if _json(ctx, as_json) else output.show_schedule(found)


def _spec_fields(cron: str | None, timezone: str | None, every: int | None, queue: str | None,
                 overlap: str | None, catch_up: str | None, catch_up_limit: int | None, jitter: int | None,
                 start_at: str | None, end_at: str | None, misfire_grace: int | None, job_timeout: int | None,
                 max_retries: int | None, paused: bool | None) -> dict[str, Any]:
    """The flags given, as schedule spec fields (flags not given are left out)."""
    fields: dict[str, Any] = {"cron": cron, "timezone": timezone, "interval_seconds": every, "queue": queue,
                              "overlap": overlap, "catch_up": catch_up, "catch_up_limit": catch_up_limit,
                              "jitter_seconds": jitter, "misfire_grace_seconds": misfire_grace,
                              "timeout": job_timeout, "paused": paused,
                              "retry": None if max_retries is None else {"max_retries": max_retries}}
    for name, text in (("start_at", start_at), ("end_at", end_at)):
        if text:
            fields[name] = parse_time(text, f"--{name.replace('_', '-')}").isoformat()
    return {k: v for k, v in fields.items() if v is not None}


Cron = Annotated[str | None, typer.Option(help="Cron expression: 5 fields, or 6 with seconds first.")]
Zone = Annotated[str | None, typer.Option("--timezone", "--tz", help="IANA time zone of --cron \\[default: UTC].")]
Every = Annotated[int | None, typer.Option("--every", min=1, metavar="SECONDS", help="An interval instead of cron.")]
SQueue = Annotated[str | None, typer.Option(help="Queue \\[default: the job type's].")]
Overlap = Annotated[str | None, typer.Option(help="allow, skip or queue_one (while the previous run has not "
                                             "ended).")]
CatchUp = Annotated[str | None, typer.Option("--catch-up", help="skip, latest or all (ticks missed in downtime).")]
CatchUpLimit = Annotated[int | None, typer.Option("--catch-up-limit", min=1, help="--catch-up all: most ticks.")]
Jitter = Annotated[int | None, typer.Option("--jitter", min=0, metavar="SECONDS", help="Fire up to this much later.")]
StartAt = Annotated[str | None, typer.Option("--start-at", help="No tick before (RFC 3339).")]
EndAt = Annotated[str | None, typer.Option("--end-at", help="No tick after (RFC 3339).")]
Grace = Annotated[int | None, typer.Option("--misfire-grace", min=1, metavar="SECONDS",
                                           help="A tick later than this is missed.")]
JobTimeout = Annotated[int | None, typer.Option("--job-timeout", min=1, help="Seconds before a run is killed.")]
MaxRetries = Annotated[int | None, typer.Option("--max-retries", min=0, help="Retries of a failed run.")]
Sets = Annotated[list[str] | None, typer.Option("--set", "-s", metavar="KEY=VALUE",
                                                help="Payload field (repeatable; as submit's).")]


@schedules_app.command("create")
@handles_errors
def schedules_create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[NAME|@FILE]", help="Unique in your tenant; or @file (@- "
                                               "stdin): a whole spec, as --spec.")] = None,
    job_type: Annotated[str | None, typer.Argument(metavar="[TYPE]", help="Job type (or in --spec).")] = None,
    payload: Annotated[str | None, typer.Option("--payload", help="JSON object, or @file (@- stdin).")] = None,
    sets: Sets = None,
    spec_source: Annotated[str | None, typer.Option("--spec", help="A whole schedule spec: JSON or @file (@- "
                                                   "stdin); the flags given override its fields.")] = None,
    cron: Cron = None, timezone: Zone = None, every: Every = None, queue: SQueue = None, overlap: Overlap = None,
    catch_up: CatchUp = None, catch_up_limit: CatchUpLimit = None, jitter: Jitter = None, start_at: StartAt = None,
    end_at: EndAt = None, misfire_grace: Grace = None, job_timeout: JobTimeout = None, max_retries: MaxRetries = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a schedule: NAME TYPE with --cron (and --timezone) or --every SECONDS, or a whole --spec."""
    if name and name.startswith("@") and spec_source is None:
        spec_source, name = name, None
    spec = load_object(spec_source, "--spec") if spec_source else {}
    if name:
        spec["name"] = name
    if job_type:
        spec["type"] = job_type
    if payload is not None or sets:
        spec["payload"] = build(payload, sets or [], base=spec.get("payload"))
    spec.update(_spec_fields(cron, timezone, every, queue, overlap, catch_up, catch_up_limit, jitter, start_at, end_at,
                             misfire_grace, job_timeout, max_retries, paused or None))
    for needed in ("name", "type"):
        if not spec.get(needed):
            raise PayloadError(f"the schedule's {needed} is missing: give NAME TYPE, or --spec with them")
    if spec.get("cron") is None and spec.get("interval_seconds") is None:
        raise PayloadError("give --cron EXPR or --every SECONDS")
    with _options(ctx).client() as client:
        made = client.create_schedule_spec(spec)
    output.print_json(made) if _json(ctx, as_json) else output.out.print(output.schedule_line(made))


@schedules_app.command("update")
@handles_errors
def schedules_update(
    ctx: typer.Context, name: Annotated[str, typer.Argument()],
    payload: Annotated[str | None, typer.Option("--payload", help="A new payload: JSON object or @file.")] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", "-s", metavar="KEY=VALUE", help="Change one payload "
                                                   "field (repeatable; the others stay).")] = None,
    spec_source: Annotated[str | None, typer.Option("--spec", help="Changes as JSON or @file (the fields given "
                                                    "replace the stored ones; null clears).")] = None,
    cron: Cron = None, timezone: Zone = None, every: Every = None, queue: SQueue = None, overlap: Overlap = None,
    catch_up: CatchUp = None, catch_up_limit: CatchUpLimit = None, jitter: Jitter = None, start_at: StartAt = None,
    end_at: EndAt = None, misfire_grace: Grace = None, job_timeout: JobTimeout = None, max_retries: MaxRetries = None,
    as_json: JsonOption = False,
) -> None:
    """Change a schedule: the fields given (--cron replaces an interval, --every a cron)."""
    changes = load_object(spec_source, "--spec") if spec_source else {}
    changes.update(_spec_fields(cron, timezone, every, queue, overlap, catch_up, catch_up_limit, jitter, start_at,
                                end_at, misfire_grace, job_timeout, max_retries, None))
    with _options(ctx).client() as client:
        if payload is not None or sets:
            base = None if payload is not None else client.schedule(name, next_runs=0).payload
            changes["payload"] = build(payload, sets or [], base=base)
        if not changes:
            raise PayloadError("nothing to change: give a flag, --set or --spec")
        changed = client.update_schedule(name, **changes)
    output.print_json(changed) if _json(ctx, as_json) else output.out.print(output.schedule_line(changed))


@schedules_app.command("delete")
@handles_errors
def schedules_delete(ctx: typer.Context, name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Delete a schedule (its jobs stay)."""
    with _options(ctx).client() as client:
        client.delete_schedule(name)
    if _json(ctx, as_json):
        output.print_json({"name": name, "deleted": True})
    else:
        output.out.print(f"{name} deleted")


@schedules_app.command("trigger")
@handles_errors
def schedules_trigger(ctx: typer.Context, name: Annotated[str, typer.Argument()], as_json: JsonOption = False
                      ) -> None:
    """Run the schedule's job now (beside its ticks). Not retried once sent: a lost answer exits 5."""
    with _options(ctx).client() as client:
        job = client.trigger_schedule(name)
    if _json(ctx, as_json):
        output.print_json(job)
    else:
        output.out.print(f"{job.id} {output.status_text(job.status)}")


@schedules_app.command("pause")
@handles_errors
def schedules_pause(ctx: typer.Context, name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Pause a schedule: no tick fires until resumed."""
    with _options(ctx).client() as client:
        found = client.pause_schedule(name)
    output.print_json(found) if _json(ctx, as_json) else output.out.print(output.schedule_line(found))


@schedules_app.command("resume")
@handles_errors
def schedules_resume(ctx: typer.Context, name: Annotated[str, typer.Argument()], as_json: JsonOption = False
                     ) -> None:
    """Resume a schedule from its next tick after now (ticks of the pause are not caught up)."""
    with _options(ctx).client() as client:
        found = client.resume_schedule(name)
    output.print_json(found) if _json(ctx, as_json) else output.out.print(output.schedule_line(found))

