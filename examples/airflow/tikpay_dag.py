"""Airflow: the daily Tikpay load, run as the README's script so its exit codes are the contract.

Put this file in your DAGs folder on a worker where tikpay-dlt is installed
(``pip install "tikpay-dlt[postgres]"``) and the working directory holds
``pipelines/tikpay.py``. Credentials come from the worker's environment (an Airflow
connection or secrets backend exported as ``SOURCES__TIKPAY__*`` and
``DESTINATION__POSTGRES__CREDENTIALS``), never from this file.

Exit code 3 (stopped for quota) is a soft outcome: what was downloaded is loaded and the
state saved, so the task is marked skipped rather than failed and tomorrow's run goes on.
Keep ``SOURCES__TIKPAY__LEDGER_DIR`` on a disk that outlives the worker (the quota count
lives there); the dlt state itself is restored from the warehouse.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.decorators import dag
from airflow.operators.bash import BashOperator  # Airflow 3: airflow.providers.standard.operators.bash

TIKPAY_DIR = "/opt/tikpay-dlt"  # where tikpay-dlt is checked out on the workers

# a failed run resumes safely (no duplicate submission), so one retry later is cheap
with_retries = {"retries": 1, "retry_delay": timedelta(minutes=30)}


@dag(
    dag_id="tikpay_daily",
    schedule="30 15 * * *",  # 01:30/02:30 in Sydney: yesterday's local day is complete
    start_date=datetime(2025, 1, 1),
    catchup=False,  # the connector catches up by itself, from the state in the warehouse
    max_active_runs=1,  # never two loads of one pipeline at once
    default_args=with_retries,
    tags=["tikpay", "dlt"],
)
def tikpay_daily() -> None:
    BashOperator(
        task_id="load",
        bash_command=f"cd {TIKPAY_DIR} && python pipelines/tikpay.py --destination postgres",
        skip_on_exit_code=3,  # stopped for quota: skipped, not failed
        execution_timeout=timedelta(minutes=45),
    )


tikpay_daily()
