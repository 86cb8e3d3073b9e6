"""`make run-observed`: Redis + API + worker (as `make run`) and a Prometheus scraping both, all on 127.0.0.1.

Prometheus loads the chart's alert rules; open its URL to run the dashboard's queries live
(charts/jobengine/dashboards/jobengine.json, docs/metrics.md). Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from run_local import supervise  # scripts/ is on sys.path when this runs as a script

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run" / "observed"


def main() -> int:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("prometheus not found: run `bash scripts/install-prometheus.sh` (Debian package, needs root)",
              file=sys.stderr)
        return 1
    env = dict(os.environ)
    env.setdefault("JOBENGINE_API_PORT", "8000")
    metrics_port = env.setdefault("JOBENGINE_METRICS_PORT", "9100")
    api_metrics_port = env.setdefault("JOBENGINE_API_METRICS_PORT", "9101")
    env.setdefault("JOBENGINE_METRICS_HOST", "127.0.0.1")
    prom_port = env.get("PROMETHEUS_PORT", "9090")
    RUN.mkdir(parents=True, exist_ok=True)
    config = RUN / "prometheus.yml"
    config.write_text(f"""# written by scripts/run_observed.py
global: {{scrape_interval: 5s, evaluation_interval: 5s}}
rule_files: ["{ROOT / 'charts/jobengine/files/prometheus-rules.yaml'}"]
scrape_configs:
  - job_name: jobengine-api
    static_configs: [{{targets: ["127.0.0.1:{api_metrics_port}"], labels: {{namespace: local, service: jobengine-api}}}}]
  - job_name: jobengine-worker
    static_configs: [{{targets: ["127.0.0.1:{metrics_port}"], labels: {{namespace: local, pool: default}}}}]
""")
    prom = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={RUN / 'data'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                            cwd=RUN, start_new_session=True)
    stack = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "run_local.py")], env=env,
                             start_new_session=True)
    print(f"Prometheus on http://127.0.0.1:{prom_port} (scrapes the API on :{api_metrics_port} and the worker on "
          f":{metrics_port}; alerts at /alerts); try: sum by (outcome) (rate(jobengine_jobs_finished_total[1m]))",
          flush=True)
    return supervise({"stack": stack, "prometheus": prom})


if __name__ == "__main__":
    sys.exit(main())
