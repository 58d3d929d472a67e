"""Airflow 2 DAG: run `curate` every night at 02:00 on that night's crawl, then check that the run succeeded.

Install:
  1. Airflow 2.4+ whose workers have `curate` on PATH (`pip install` this project into the worker's
     environment, or run the same two commands with the curate image in a KubernetesPodOperator).
  2. Copy this file into the DAGs folder (`$AIRFLOW_HOME/dags/`).
  3. Set the Airflow Variables it reads (no secrets: an LLM key belongs in the worker's environment, named
     by `revise.llm.api_key_env` in the run config):
         airflow variables set curate_lake /data/curate/lake
         airflow variables set curate_crawl_root /data/crawls     # one directory per night: <root>/<ds>
         airflow variables set curate_config /etc/curate/nightly.yaml   # optional (deploy/configs/nightly.yaml)
  4. Unpause it: `airflow dags unpause curate_nightly`.

The crawl id is the DAG run's `ds`, so clearing and rerunning a night re-decides only what that night has not
decided yet (the pipeline's writes are idempotent). max_active_runs=1 keeps two runs off the lake at once.
"""

from __future__ import annotations

import pendulum
from airflow import DAG
from airflow.operators.bash import BashOperator

CONFIG_ARG = "{% if var.value.get('curate_config', '') %}--config '{{ var.value.curate_config }}' {% endif %}"

RUN_COMMAND = (
    "curate run --quiet --lake '{{ var.value.curate_lake }}' "
    + CONFIG_ARG
    + "--input '{{ var.value.curate_crawl_root }}/{{ ds }}' --crawl-id '{{ ds }}'"
)

# `curate sql --format json` prints one JSON object per row; the newest run of this crawl must say success.
CHECK_COMMAND = r"""
set -euo pipefail
row=$(curate sql --lake '{{ var.value.curate_lake }}' --format json \
  "SELECT run_id, status, error FROM runs WHERE crawl_id = '{{ ds }}' ORDER BY started_at DESC LIMIT 1")
echo "newest curate run for crawl {{ ds }}: ${row:-none}"
python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1] or "{}").get("status") != "success")' "${row}"
"""

with DAG(
    dag_id="curate_nightly",
    description="Curate the night's crawl into a new corpus version (ingest, quality, dedup, classify, revise)",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data", "retries": 1, "retry_delay": pendulum.duration(minutes=15)},
    tags=["curate"],
) as dag:
    run = BashOperator(
        task_id="run",
        bash_command=RUN_COMMAND,
        execution_timeout=pendulum.duration(hours=6),
    )
    check = BashOperator(
        task_id="check_run_succeeded",
        bash_command=CHECK_COMMAND,
        retries=0,
    )
    run >> check
