"""The shape of a flow (POST /v1/flows), checked before anything is written: names unique, edges to known
names, no cycle, within the node, edge and depth limits. Pure: no I/O. Errors name the node and its field, as
the 422 reports them (`nodes.<index>.depends_on`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FlowError(Exception):
    field: str  # e.g. nodes.3.depends_on.0
    message: str


@dataclass(frozen=True)
class Limits:
    max_nodes: int
    max_edges: int
    max_depth: int


def order(names: Sequence[str], edges: Sequence[Sequence[str]], limits: Limits) -> list[int]:
    """The nodes' indexes in an order where each node comes after every node it depends on (Kahn's algorithm,
    stable: among ready nodes the one given first), or FlowError. names[i] is node i's name; edges[i] the names
    node i depends on."""
    if not names:
        raise FlowError("nodes", "a flow needs at least one node")
    if len(names) > limits.max_nodes:
        raise FlowError("nodes", f"at most {limits.max_nodes} nodes per flow (JOBENGINE_FLOW_MAX_NODES)")
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in index:
            raise FlowError(f"nodes.{i}.name", f"duplicate name {name!r} (also node {index[name]})")
        index[name] = i
    total = sum(len(e) for e in edges)
    if total > limits.max_edges:
        raise FlowError("nodes", f"{total} dependencies; at most {limits.max_edges} per flow "
                                 "(JOBENGINE_FLOW_MAX_EDGES)")
    parents: list[list[int]] = []
    for i, deps in enumerate(edges):
        seen: set[str] = set()
        ps = []
        for j, dep in enumerate(deps):
            if dep not in index:
                raise FlowError(f"nodes.{i}.depends_on.{j}", f"no node named {dep!r} in this flow")
            if dep == names[i]:
                raise FlowError(f"nodes.{i}.depends_on.{j}", "a node cannot depend on itself")
            if dep in seen:
                raise FlowError(f"nodes.{i}.depends_on.{j}", f"{dep!r} named twice")
            seen.add(dep)
            ps.append(index[dep])
        parents.append(ps)
    children: list[list[int]] = [[] for _ in names]
    waiting = [len(ps) for ps in parents]
    for i, ps in enumerate(parents):
        for p in ps:
            children[p].append(i)
    depth = [1] * len(names)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    out: list[int] = []
    head = 0
    while head < len(ready):
        i = ready[head]
        head += 1
        out.append(i)
        for c in children[i]:
            depth[c] = max(depth[c], depth[i] + 1)
            if depth[c] > limits.max_depth:
                raise FlowError(f"nodes.{c}.depends_on", f"a chain longer than {limits.max_depth} nodes "
                                                         "(JOBENGINE_FLOW_MAX_DEPTH)")
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    if len(out) < len(names):
        stuck = next(i for i, w in enumerate(waiting) if w > 0)
        raise FlowError(f"nodes.{stuck}.depends_on", f"a cycle: {_cycle(stuck, parents, waiting, names)}")
    return out


def _cycle(start: int, parents: list[list[int]], waiting: list[int], names: Sequence[str]) -> str:
    """One cycle through the nodes left waiting, as 'a -> b -> a' (each depends on the next)."""
    path: list[int] = []
    at: dict[int, int] = {}
    node = start
    while node not in at:
        at[node] = len(path)
        path.append(node)
        node = next(p for p in parents[node] if waiting[p] > 0)
    loop = path[at[node]:] + [node]
    return " -> ".join(repr(names[i]) for i in loop)
