"""Draw a bench run (bench/results/latest.json) as a PNG: throughput per engine, and end-to-end latency
p50/p99 per engine. Runs in .venv-bench (matplotlib is a benchmark-only package):

    .venv-bench/bin/python -m bench.plot bench/results/latest.json docs/img/bench.png
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def latency_pairs(results: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """(engine, p50, p99) from the latency records named '<engine> p50' and '<engine> p99'."""
    by_name = {r["engine"]: r["value"] for r in results if r["scenario"] == "latency"}
    pairs = []
    for name, p50 in by_name.items():
        if " p50" in name and "floor" not in name:
            engine = name.replace(" p50", "")
            p99 = by_name.get(name.replace(" p50", " p99"))
            if p99 is not None:
                label = engine.replace(" (", "\n(").replace(", ", ",\n")
                if engine.startswith("jobengine"):
                    label += "\n(through HTTP)"
                pairs.append((label, p50, p99))
    return pairs


def main(json_path: str, png_path: str) -> None:
    with open(json_path) as f:
        run = json.load(f)
    results = run["results"]
    throughput = sorted(((r["engine"], r["value"]) for r in results
                         if r["scenario"] == "throughput" and r["unit"] == "jobs/s"), key=lambda item: item[1])
    latency = latency_pairs(results)

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    names = [name for name, _ in throughput]
    values = [value for _, value in throughput]
    colors = ["tab:blue" if name.startswith("jobengine") else "tab:gray" for name in names]
    bars = left.barh(names, values, color=colors)
    left.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3)
    left.set_xscale("log")
    left.set_xlabel("jobs/s while draining a backlog of add(a, b) (log scale)")
    left.set_title("Worker throughput, one Redis, 2 cores")
    left.set_xlim(right=max(values) * 4)

    if latency:
        xs = range(len(latency))
        width = 0.38
        p50 = right.bar([x - width / 2 for x in xs], [p for _, p, _ in latency], width, label="p50")
        p99 = right.bar([x + width / 2 for x in xs], [p for _, _, p in latency], width, label="p99")
        right.bar_label(p50, fmt="%.1f", padding=2)
        right.bar_label(p99, fmt="%.1f", padding=2)
        right.set_xticks(list(xs), [name for name, _, _ in latency], fontsize=8)
        right.set_ylabel("ms")
        right.set_title("Latency: enqueued -> result in hand (idle worker)")
        right.legend()
    mode = "quick run" if run.get("quick") else "full run"
    load = run.get("loadavg") or [float("nan")]
    fig.suptitle(f"jobengine bench ({mode}, {run.get('date', '')}, {run.get('nproc', '?')} cores, "
                 f"load average {load[0]:.2f} at the end)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
