"""/v1/flows: submit a DAG of jobs in one request (written atomically by flow.lua, or refused whole), read it
with each node's state, cancel it. Retry a failed node with POST /v1/jobs/{id}/retry: the flow resumes."""

from __future__ import annotations

import copy
import hashlib
import re
from datetime import datetime, timezone
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from pydantic import ValidationError
from redis.exceptions import OutOfMemoryError
from starlette.responses import Response

from jobengine import keys, scripts, tracing
from jobengine.jobdata import API_STATUS, JOB_ID_PATTERN, new_job_ids, utcformat
from jobengine.metrics import JOBS_REJECTED

from .. import flows
from ..apikey import Principal
from ..deps import ApiContext, ContextDep, ReadPrincipal, SubmitPrincipal
from ..flowgraph import FlowError, Limits, order
from ..models import FLOW_NAME_REGEX, IDEMPOTENCY_KEY_MAX
from ..problems import Problem, invalid, not_found, redis_full
from ..responses import JSONResponse
from ..store import prepare_job
from .jobs import IDEMPOTENCY_HEADER, PROBLEMS, _json_body, _memory_guard, _validation_problem, problems, queue_paused, unknown_queue

router = APIRouter(prefix="/v1", tags=["flows"])

FlowId = Annotated[str, Path(pattern=JOB_ID_PATTERN.pattern, description="Flow id, as returned on submit.")]
NAME = re.compile(FLOW_NAME_REGEX)
NODE_KEYS = ("name", "depends_on", "on_dependency_failure")


def _problem(errors: list[dict[str, str]], detail: str = "The flow is not valid; nothing was written.") -> Problem:
    JOBS_REJECTED.labels("validation").inc()
    return invalid(errors, detail)


def _edges(i: int, raw: Any) -> list[tuple[str, str]]:
    """A node's depends_on: names, or {name, on} (on: success | any)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _problem([{"field": f"nodes.{i}.depends_on", "message": "a list of node names"}])
    out = []
    for j, item in enumerate(raw):
        field = f"nodes.{i}.depends_on.{j}"
        if isinstance(item, str):
            out.append((item, "success"))
        elif isinstance(item, dict) and isinstance(item.get("name"), str) and set(item) <= {"name", "on"} \
                and item.get("on", "success") in ("success", "any"):
            out.append((item["name"], item.get("on", "success")))
        else:
            raise _problem([{"field": field, "message": "a node name, or {\"name\": ..., \"on\": \"success\" | "
                                                        "\"any\"}"}])
    return out


def parse_nodes(ctx: ApiContext, doc: Any) -> tuple[list[Any], list[str], list[list[tuple[str, str]]], list[str]]:
    """(submissions, names, edges, policies), or a 422 naming the node and field."""
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise _problem([{"field": "nodes", "message": "a list of nodes is required"}])
    if extra := sorted(set(doc) - {"nodes"}):
        raise _problem([{"field": name, "message": "unknown field"} for name in extra])
    items = doc["nodes"]
    if len(items) > ctx.settings.flow_max_nodes:
        raise _problem([{"field": "nodes", "message": f"at most {ctx.settings.flow_max_nodes} nodes per flow "
                                                      "(JOBENGINE_FLOW_MAX_NODES)"}])
    subs, names, edges, policies = [], [], [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _problem([{"field": f"nodes.{i}", "message": "a node is an object"}])
        name = item.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise _problem([{"field": f"nodes.{i}.name", "message": f"required, matching {FLOW_NAME_REGEX}"}])
        policy = item.get("on_dependency_failure", "fail")
        if policy not in ("fail", "cancel"):
            raise _problem([{"field": f"nodes.{i}.on_dependency_failure", "message": "fail or cancel"}])
        deps = _edges(i, item.get("depends_on"))
        job = {k: v for k, v in item.items() if k not in NODE_KEYS}
        try:
            sub = ctx.submissions.single.validate_python(job)
        except ValidationError as exc:
            problem, _ = _validation_problem(ctx, exc)
            raise _node_problem(problem, i) from None
        if sub.queue is not None and sub.queue not in ctx.queues:
            raise _node_problem(unknown_queue(ctx, sub.queue), i)
        if deps and (sub.delay_seconds is not None or sub.run_at is not None):
            raise _problem([{"field": f"nodes.{i}.depends_on",
                             "message": "a node with dependencies runs when they end: no delay_seconds or run_at"}])
        subs.append(sub)
        names.append(name)
        edges.append(deps)
        policies.append(policy)
    return subs, names, edges, policies


def _node_problem(problem: Problem, i: int) -> Problem:
    """The same problem with its field paths under nodes.<i>."""
    errors = [{**e, "field": f"nodes.{i}.{e['field']}"} for e in problem.errors or []]
    return _problem(errors, problem.detail)


@router.post(
    "/flows", status_code=202, summary="Submit a flow: jobs with dependencies between them, written atomically",
    description="Each node is a job submission (as POST /v1/jobs) with a `name` unique in the flow, `depends_on` "
                "(names of nodes of this flow, or {name, on: success | any}) and `on_dependency_failure` (fail | "
                "cancel). All nodes are written by one script, or none (422 naming `nodes.<index>.<field>`). "
                "Limits: JOBENGINE_FLOW_MAX_NODES, _MAX_EDGES, _MAX_DEPTH; cycles are refused.",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/FlowSubmission"}}}}, "parameters": [IDEMPOTENCY_HEADER]},
    responses={202: {"description": "Accepted; Location names the flow."},
               200: {"description": "Idempotent replay: the flow of an earlier request."},
               **problems(409, 413, 415, 429), **PROBLEMS},
)
async def submit_flow(request: Request, ctx: ContextDep, principal: SubmitPrincipal) -> Response:
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= IDEMPOTENCY_KEY_MAX:
        raise invalid([{"field": "Idempotency-Key", "message": f"1 to {IDEMPOTENCY_KEY_MAX} characters"}])
    doc, body = await _json_body(request, request.headers.get("content-type"))
    subs, names, edges, policies = parse_nodes(ctx, doc)
    s = ctx.settings
    try:
        topo = order(names, [[d for d, _ in e] for e in edges],
                     Limits(s.flow_max_nodes, s.flow_max_edges, s.flow_max_depth))
    except FlowError as exc:
        raise _problem([{"field": exc.field, "message": exc.message}]) from None
    fp = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest() if key else ""
    return await _write(ctx, principal, subs, names, edges, policies, topo, key or "", fp)


async def _write(ctx: ApiContext, principal: Principal, subs: list[Any], names: list[str],
                 edges: list[list[tuple[str, str]]], policies: list[str], topo: list[int], key: str, fp: str
                 ) -> Response:
    tenant = principal.tenant
    ids = new_job_ids(len(subs))
    by_name = dict(zip(names, ids, strict=True))
    flow_id = flows.new_flow_id()
    now = datetime.now(timezone.utc)
    _memory_guard(ctx, len(subs))
    nodes: list[scripts.FlowNodeArgs] = []
    graph = []
    with tracing.enqueue_span(len(subs)) as span:  # every job carries this span's context: the flow's trace
        if getattr(span, "span", None) is not None:
            span.span.update_name("enqueue flow")
            span.span.set_attributes({"jobengine.flow.id": flow_id, "jobengine.flow.nodes": len(subs)})
        for i in topo:
            sub = subs[i]
            deps = {d: by_name[d] for d, _ in edges[i]}
            job = prepare_job(sub, ctx.catalog[sub.type], ctx.settings, trace_meta={**(span.meta or {}), "flow": flow_id},
                              tenant=tenant, key_id="", now=now, job_id=ids[i], dependencies=deps or None)
            if ctx.paused is not None and ctx.paused.refusing and job.queue in ctx.paused.refusing:
                raise queue_paused(job.queue)
            if deps:
                flows.as_deferred(job)
            flows.without_limits(job)
            nodes.append(scripts.FlowNodeArgs(job.keys, job.args, [(by_name[d], on) for d, on in edges[i]],
                                              policies[i]))
            graph.append([names[i], ids[i], [d for d, _ in edges[i]]])
        quota = ctx.settings.tenant_quota(tenant)
        fields = ["tenant", tenant, "created_at", utcformat(now), "graph", orjson.dumps(graph),
                  "ttl", ctx.settings.flow_ttl_seconds]
        try:
            reply = await flows.write(ctx.store, flow_id=flow_id, tenant=tenant, nodes=nodes, flow_fields=fields,
                                      counter=keys.tenant_backlog(tenant) if quota else "", quota=quota,
                                      idempotency_key=key, fingerprint=fp)
        except OutOfMemoryError:
            JOBS_REJECTED.labels("redis_oom").inc(len(subs))
            raise redis_full() from None
    if reply.code == scripts.FLOW_QUOTA:
        JOBS_REJECTED.labels("tenant_quota").inc(len(subs))
        raise Problem(429, "tenant-quota", f"The flow's {len(subs)} jobs would exceed the tenant's quota of jobs not "
                      "yet ended; retry later.", headers={"Retry-After": str(ctx.settings.backlog_retry_after_seconds)})
    if reply.code == scripts.FLOW_REPEAT:
        if reply.statuses[0] != fp:
            JOBS_REJECTED.labels("idempotency_conflict").inc()
            raise Problem(409, "idempotency-conflict", f"Idempotency-Key {key!r} was used with a different request "
                          "body.")
        location = f"/v1/flows/{reply.id}"
        seen = await flows.read(ctx.store, reply.id, tenant)
        body = {"id": reply.id, "state": seen["state"] if seen else "expired", "location": location,
                "nodes": [{"name": n["name"], "id": n["id"], "status": n["status"]} for n in (seen or {}).get("nodes", [])]}
        return JSONResponse(body, status_code=200, headers={"Location": location, "Idempotent-Replayed": "true"})
    if reply.code != scripts.FLOW_WRITTEN:
        raise Problem(500, "flow-not-written", f"unexpected answer {reply.code}")
    status = dict(zip((n[1] for n in graph), reply.statuses, strict=True))
    location = f"/v1/flows/{flow_id}"
    out = {"id": flow_id, "state": "running", "location": location,
           "nodes": [{"name": names[i], "id": ids[i], "status": _api(status[ids[i]])} for i in range(len(names))]}
    return JSONResponse(out, status_code=202, headers={"Location": location})


def _api(rq_status: str) -> str:
    return API_STATUS.get(rq_status, rq_status)


@router.get("/flows/{flow_id}", summary="Read a flow: its state and each node's",
            responses={200: {"description": "The flow."}, **problems(404), **PROBLEMS})
async def get_flow(flow_id: FlowId, ctx: ContextDep, principal: ReadPrincipal) -> Response:
    flow = await flows.read(ctx.store, flow_id, principal.tenant)
    if flow is None:
        raise not_found(f"Flow {flow_id}")
    return JSONResponse(flow)


async def _cancel(flow_id: str, ctx: ApiContext, principal: Principal) -> Response:
    counts = await flows.cancel(ctx.store, flow_id, principal.tenant)
    if counts is None:
        raise not_found(f"Flow {flow_id}")
    return JSONResponse({"id": flow_id, "canceled": counts.get("canceled", 0),
                         "stopping": counts.get("stopping", 0), "ended_already": counts.get("terminal", 0)})


@router.delete("/flows/{flow_id}", summary="Cancel a flow: what has not run is canceled, what runs is stopped",
               responses={200: {"description": "Counts of the jobs canceled, told to stop, ended already."},
                          **problems(404), **PROBLEMS})
async def cancel_flow(flow_id: FlowId, ctx: ContextDep, principal: SubmitPrincipal) -> Response:
    return await _cancel(flow_id, ctx, principal)


@router.post("/flows/{flow_id}:cancel", summary="Cancel a flow (as DELETE /v1/flows/{flow_id})",
             responses={200: {"description": "Counts of the jobs canceled, told to stop, ended already."},
                        **problems(404), **PROBLEMS})
async def cancel_flow_post(flow_id: FlowId, ctx: ContextDep, principal: SubmitPrincipal) -> Response:
    return await _cancel(flow_id, ctx, principal)


def openapi_components(components: dict[str, Any]) -> dict[str, Any]:
    """FlowSubmission: nodes, each one job type's submission schema (as in JobSubmission) with its name in the
    flow, its edges (names of nodes) and on_dependency_failure in place of depends_on's job ids."""
    ref = "#/components/schemas/"
    edge = {"oneOf": [{"type": "string", "pattern": FLOW_NAME_REGEX},
                      {"type": "object", "required": ["name"], "additionalProperties": False,
                       "properties": {"name": {"type": "string", "pattern": FLOW_NAME_REGEX},
                                      "on": {"type": "string", "enum": ["success", "any"], "default": "success"}}}]}
    out: dict[str, Any] = {}
    mapping = {}
    for type_name, target in components["JobSubmission"].get("discriminator", {}).get("mapping", {}).items():
        model = target.rsplit("/", 1)[-1]
        node = copy.deepcopy(components[model])
        node["title"] = f"{model}FlowNode"
        node["properties"]["name"] = {"type": "string", "pattern": FLOW_NAME_REGEX, "description": "Unique in the flow."}
        node["properties"]["depends_on"] = {"type": "array", "items": edge, "minItems": 1,
                                            "description": "Nodes of this flow this one waits for."}
        node["required"] = sorted({*node.get("required", []), "name"})
        out[f"{model}FlowNode"] = node
        mapping[type_name] = f"{ref}{model}FlowNode"
    out["FlowNode"] = {"oneOf": [{"$ref": r} for r in mapping.values()],
                       "discriminator": {"propertyName": "type", "mapping": mapping}}
    out["FlowSubmission"] = {
        "type": "object", "title": "FlowSubmission", "required": ["nodes"], "additionalProperties": False,
        "properties": {"nodes": {"type": "array", "minItems": 1, "items": {"$ref": f"{ref}FlowNode"}}}}
    return out
