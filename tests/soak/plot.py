"""Draw soak.csv (tests/soak/run.py) as soak.png: latency, RSS and Redis memory over time.
Runs in .venv-soak (matplotlib); stdlib otherwise, so the services' venv never needs matplotlib."""

from __future__ import annotations

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(csv_path: str, png_path: str) -> None:
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    t = [float(r["t"]) for r in rows]

    def col(name: str) -> list[float]:
        return [float(r[name]) for r in rows]

    def ms(name: str) -> list[float]:  # a window without samples is a gap, not 0 on a log scale
        return [v if v > 0 else float("nan") for v in col(name)]

    fig, (lat, mem, rate) = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    lat.plot(t, ms("submit_p99_ms"), label="submit p99 (POST -> 202)")
    lat.plot(t, ms("submit_p50_ms"), label="submit p50", linestyle="--")
    lat.plot(t, ms("e2e_p99_ms"), label="end-to-end p99 (enqueued -> ended)")
    lat.set_ylabel("ms")
    lat.set_yscale("log")
    lat.legend(loc="upper left")
    lat.set_title("jobengine soak")
    for name, label in (("api_rss_mb", "API RSS"), ("worker_rss_mb", "worker supervisor RSS"),
                        ("executor_rss_mb", "executor RSS"), ("redis_used_mb", "Redis used_memory")):
        mem.plot(t, col(name), label=label)
    mem.set_ylabel("MiB")
    mem.legend(loc="upper left")
    rate.plot(t, col("rate"), label="accepted/s")
    rate.plot(t, col("queue_depth"), label="queue depth")
    rate.plot(t, col("errors"), label="errors per interval")
    rate.set_xlabel("seconds")
    rate.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
