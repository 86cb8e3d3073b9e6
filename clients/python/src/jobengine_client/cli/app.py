"""`jobengine`: the command line of the jobengine API, built on the SDK (typer + rich)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
from rich.json import JSON

from .. import __version__
from ..client import Client
from ..errors import JobengineError, WaitTimeout
from ..models import STATUSES, Job
from ..retry import RetryPolicy
from . import exitcodes, output
from .payload import PayloadError, build, parse_time
from .profiles import ProfileError, resolve

F = TypeVar("F", bound=Callable[..., Any])

EPILOG = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in exitcodes.TABLE) + "."
app = typer.Typer(help="Submit and inspect jobengine jobs; operate queues, workers, bulk operations and "
                  "schedules.", epilog=EPILOG, no_args_is_help=True,
                  rich_markup_mode="rich", pretty_exceptions_enable=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts).")]


@dataclass
class Options:
    url: str | None
    api_key: str | None
    profile: str | None
    json: bool
    timeout: float
    retries: int | None

    def client(self) -> Client:
        chosen = resolve(self.url, self.api_key, self.profile)
        retries = None if self.retries is None else RetryPolicy(attempts=self.retries)
        return Client(chosen.url, api_key=chosen.api_key, timeout=self.timeout, retries=retries)


def _options(ctx: typer.Context) -> Options:
    return ctx.find_object(Options) or Options(None, None, None, False, 10.0, None)


def handles_errors(fn: F) -> F:
    """Turn the SDK's exceptions into a message on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx: typer.Context = kwargs["ctx"]
        as_json = _options(ctx).json or bool(kwargs.get("as_json"))
        try:
            return fn(*args, **kwargs)
        except (ProfileError, PayloadError) as exc:
            output.err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(exitcodes.USAGE) from None
        except WaitTimeout as exc:
            if as_json:
                output.print_json(exc.job)
            output.err.print(f"[yellow]timeout:[/] {exc}")
            raise typer.Exit(exitcodes.TIMEOUT) from None
        except JobengineError as exc:
            output.show_error(exc, as_json)
            raise typer.Exit(exitcodes.for_error(exc)) from None
        except KeyboardInterrupt:  # Ctrl-C while waiting: the job goes on; no traceback
            output.err.print("interrupted")
            raise typer.Exit(exitcodes.INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        output.out.print(f"jobengine-client {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="API base URL \\[default: profile, JOBENGINE_URL, "
                                            "http://127.0.0.1:8000]")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key \\[default: profile, JOBENGINE_API_KEY]")] = None,
    profile: Annotated[str | None, typer.Option(help="Profile of the config file (JOBENGINE_CONFIG or "
                                                "~/.config/jobengine/config.toml).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts).")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per HTTP request.")] = 10.0,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                          callback=_version)] = False,
    retries: Annotated[int | None, typer.Option(min=1, help="Tries per request on connection errors, 429 and 5xx "
                                                "\\[default: 30, within 60 s].")] = None,
) -> None:
    ctx.obj = Options(url, api_key, profile, as_json, timeout, retries)


def _wait(client: Client, job_id: str, job_type: str, timeout: float | None, progress: bool | None,
          as_json: bool) -> Job[Any]:
    show = (not as_json and output.err.is_terminal) if progress is None else progress
    if not show:
        return client.wait(job_id, timeout=timeout)
    with output.ProgressView(job_id, job_type) as view:
        return client.wait(job_id, timeout=timeout, on_progress=view.update, poll_interval=0.25)


def _finish(job: Job[Any], as_json: bool) -> None:
    if as_json:
        output.print_json(job)
    else:
        output.show_job(job)
    if job.status in ("failed", "canceled"):
        raise typer.Exit(exitcodes.JOB_FAILED)


WaitOption = Annotated[bool, typer.Option("--wait", "-w", help="Wait for the job to end; show its progress.")]
TimeoutOption = Annotated[float | None, typer.Option("--wait-timeout", help="With --wait: give up after this many "
                                                     "seconds (exit 6).")]
ProgressOption = Annotated[bool | None, typer.Option("--progress/--no-progress", help="With --wait: the live "
                                                     "progress bar \\[default: when stderr is a terminal]",
                                                     show_default=False)]


@app.command()
@handles_errors
def submit(
    ctx: typer.Context,
    job_type: Annotated[str, typer.Argument(metavar="TYPE", help="Job type (see `jobengine types`).")],
    payload: Annotated[str | None, typer.Argument(metavar="[PAYLOAD]", help="JSON object, or @file (@- stdin).")
                       ] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", "-s", metavar="KEY=VALUE",
                                                   help="Payload field (repeatable; dotted keys nest; a value is "
                                                   "JSON when it parses, else a string).")] = None,
    queue: Annotated[str | None, typer.Option(help="Queue \\[default: the job type's].")] = None,
    delay: Annotated[float | None, typer.Option(help="Run after this many seconds.")] = None,
    run_at: Annotated[str | None, typer.Option(help="Run at this time (RFC 3339, e.g. 2026-12-24T18:00:00Z; UTC "
                                               "when no offset).")] = None,
    job_timeout: Annotated[int | None, typer.Option(help="Seconds before a run is killed.")] = None,
    max_retries: Annotated[int | None, typer.Option(min=0, help="Retries of a failed run \\[default: the job "
                                                    "type's policy].")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Repeat a submission safely \\[default: a new key "
                                                        "per command, reused on its retries].")] = None,
    wait: WaitOption = False,
    wait_timeout: TimeoutOption = None,
    progress: ProgressOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a job; with --wait, follow its progress and print its result."""
    opts = _options(ctx)
    as_json = as_json or opts.json
    body = build(payload, sets or [])
    when = parse_time(run_at) if run_at else None
    with opts.client() as client:
        accepted = client.submit(job_type, body, queue=queue, delay_seconds=delay, run_at=when, timeout=job_timeout,
                                 retry=None if max_retries is None else {"max_retries": max_retries},
                                 idempotency_key=idempotency_key)
        if not wait:
            if as_json:
                output.print_json(accepted)
            else:
                note = " (replayed: an earlier submission with this key)" if accepted.replayed else ""
                output.out.print(f"{accepted.id} {output.status_text(accepted.status)} {accepted.type} "
                                 f"on {accepted.queue}{note}")
            return
        if not as_json:
            output.err.print(f"submitted {accepted.id}")  # Ctrl-C stops the waiting, not the job
        job = _wait(client, accepted.id, accepted.type, wait_timeout, progress, as_json)
    _finish(job, as_json)


@app.command()
@handles_errors
def get(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    wait: WaitOption = False,
    wait_timeout: TimeoutOption = None,
    progress: ProgressOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a job: status, progress, result or error. With --wait, exit 1 if it failed or was canceled."""
    opts = _options(ctx)
    as_json = as_json or opts.json
    with opts.client() as client:
        job = client.get(job_id)
        if wait and not job.done:
            job = _wait(client, job_id, job.type, wait_timeout, progress, as_json)
    if not wait:
        output.print_json(job) if as_json else output.show_job(job)
        return
    _finish(job, as_json)


@app.command("ls")
@handles_errors
def list_jobs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help=f"One of {', '.join(STATUSES)}.")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Job type.")] = None,
    queue: Annotated[str | None, typer.Option(help="Queue.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Jobs per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Start at this page (next_cursor of the previous one).")
                      ] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow the cursors to the last page.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first, one page at a time (or --all)."""
    opts = _options(ctx)
    as_json = as_json or opts.json
    if status is not None and status not in STATUSES:
        output.err.print(f"[red]error:[/] --status must be one of {', '.join(STATUSES)}")
        raise typer.Exit(exitcodes.USAGE)
    with opts.client() as client:
        if all_pages:
            items, next_cursor = list(client.list(status=status, type=job_type, queue=queue, page_size=limit)), None
        else:
            page = client.list_page(status=status, type=job_type, queue=queue, limit=limit, cursor=cursor)
            items, next_cursor = page.items, page.next_cursor
    if as_json:
        output.print_json({"items": items, "next_cursor": next_cursor})
        return
    output.out.print(output.jobs_table(items))
    if next_cursor:
        output.err.print(f"more: jobengine ls --cursor {next_cursor}" + (f" --limit {limit}" if limit != 20 else ""))


@app.command()
@handles_errors
def cancel(ctx: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOption = False
           ) -> None:
    """Cancel a job (a running one is stopped by its worker: `canceling`)."""
    opts = _options(ctx)
    with opts.client() as client:
        change = client.cancel(job_id)
    if as_json or opts.json:
        output.print_json(change)
    else:
        output.out.print(f"{change.id} {output.status_text(change.status)}")


@app.command()
@handles_errors
def retry(ctx: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOption = False
          ) -> None:
    """Queue a failed or canceled job again."""
    opts = _options(ctx)
    with opts.client() as client:
        change = client.retry(job_id)
    if as_json or opts.json:
        output.print_json(change)
    else:
        output.out.print(f"{change.id} {output.status_text(change.status)}")


@app.command()
@handles_errors
def types(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One job type: its input and result JSON schemas.")] = None,
    schemas: Annotated[bool, typer.Option("--schemas", help="Every type's schemas too.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The job types that can be submitted, with their JSON schemas."""
    opts = _options(ctx)
    with opts.client() as client:
        found = [client.job_type(name)] if name else client.job_types()
    if as_json or opts.json:
        output.print_json(found[0] if name else found)
        return
    output.out.print(output.types_table(found))
    if name or schemas:
        for t in found:
            output.out.print(f"\n[bold]{t.name}[/] input schema")
            output.out.print(JSON.from_data(t.input_schema))
            output.out.print(f"[bold]{t.name}[/] result schema")
            output.out.print(JSON.from_data(t.result_schema))


@app.command()
@handles_errors
def health(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Is the API alive (/healthz) and ready (/readyz: Redis answers)? Exit 5 when not ready."""
    opts = _options(ctx)
    with opts.client() as client:
        state = client.health()
    if as_json or opts.json:
        output.print_json(state)
    else:
        ready = "[green]ready[/]" if state["ready"] else f"[red]not ready[/] ({state['detail']})"
        output.out.print(f"{client.url}: alive, {ready}")
    if not state["ready"]:
        raise typer.Exit(exitcodes.UNAVAILABLE)


from . import operators  # noqa: E402,F401  (registers workers, queues, bulk, ops and schedules on app)
