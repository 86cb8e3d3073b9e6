"""Draw the autoscaling simulation (make autoscale-sim's JSON) as a PNG: per trace, the pods of
today's chart and of the fixed one over time, next to the busy pods (the work itself). Runs in
.venv-bench (matplotlib is a benchmark-only package):

    .venv-bench/bin/python -m bench.autoscale_plot .run/autoscale/results.json docs/img/autoscale.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SHOWN = {"today: KEDA + inFlight": ("tab:red", "today's chart (KEDA + inFlight)"),
         "fixed chart": ("tab:blue", "fixed chart")}


def main(json_path: str, png_path: str) -> None:
    with open(json_path) as f:
        results = json.load(f)
    traces = list(dict.fromkeys(r["trace"] for r in results))
    fig, axes = plt.subplots(len(traces), 1, figsize=(10, 2.6 * len(traces)), sharex=False)
    for ax, trace in zip(axes, traces, strict=True):
        rows = {r["variant"]: r for r in results if r["trace"] == trace}
        fixed = rows["fixed chart"]
        minutes = [t / 60 for t in fixed["series"]["t"]]
        ax.fill_between(minutes, fixed["series"]["busy"], step="post", color="0.85", label="busy pods (fixed chart)")
        for variant, (color, label) in SHOWN.items():
            r = rows[variant]
            ax.step([t / 60 for t in r["series"]["t"]], r["series"]["pods"], where="post", color=color, lw=1.2,
                    label=f"{label}: {r['interrupted']} interrupted, {r['ratio']:.2f}x ideal pod-s, "
                          f"wait p95 {r['wait_p95']:.0f} s")
        ax.set_title(trace, loc="left", fontsize=10)
        ax.set_ylabel("pods")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("minutes")
    fig.suptitle("Autoscaling simulation: pods over time (HPA + KEDA model fed by the rendered chart)", fontsize=11)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
