"""Airflow: the daily Tikpay load, run as the README's script so its exit codes are the contract.

Put this file in your DAGs folder on the workers where tikpay-dlt is installed
(``pip install "tikpay-dlt[postgres]"``) and the working directory holds
``pipelines/tikpay.py``. Credentials come from the worker's environment (an Airflow
connection or secrets backend exported as ``SOURCES__TIKPAY__*`` and
``DESTINATION__POSTGRES__CREDENTIALS``), never from this file.

Two workers, one key: the scheduled load runs on whichever worker is free, and the
catch-up DAG (triggered by hand, for a backfill after an outage) on another. Both set
``SOURCES__TIKPAY__LEDGER=destination``, so the request ledger and the run lock live in
the warehouse: the two count one 20-a-day quota between them (and with any laptop using
the same key and warehouse), and only one of them loads the pipeline at a time. No
worker needs a disk that outlives it: the dlt state is restored from the warehouse too.

Exit code 3 (stopped for quota) and 5 (the other worker holds the pipeline's lock) are
soft outcomes: what was downloaded is loaded and the state saved, so the task is marked
skipped rather than failed and the next run goes on.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.decorators import dag
from airflow.operators.bash import BashOperator  # Airflow 3: airflow.providers.standard.operators.bash

TIKPAY_DIR = "/opt/tikpay-dlt"  # where tikpay-dlt is checked out on the workers
SHARED_LEDGER = {"SOURCES__TIKPAY__LEDGER": "destination"}  # one quota and one lock for every worker
SOFT_EXIT_CODES = [3, 5]  # stopped for quota; another worker is running the pipeline

# a failed run resumes safely (no duplicate submission), so one retry later is cheap
with_retries = {"retries": 1, "retry_delay": timedelta(minutes=30)}


def load_task(flags: str, settings: dict[str, str] | None = None, **operator_args: object) -> BashOperator:
    """The script as a task: the worker's environment (credentials) kept, the shared ledger and ``settings`` added."""
    return BashOperator(
        task_id="load",
        bash_command=f"cd {TIKPAY_DIR} && python pipelines/tikpay.py --destination postgres {flags}".strip(),
        env={**SHARED_LEDGER, **(settings or {})},
        append_env=True,
        skip_on_exit_code=SOFT_EXIT_CODES,
        **operator_args,
    )


@dag(
    dag_id="tikpay_daily",
    schedule="30 15 * * *",  # 01:30/02:30 in Sydney: yesterday's local day is complete
    start_date=datetime(2025, 1, 1),
    catchup=False,  # the connector catches up by itself, from the state in the warehouse
    max_active_runs=1,  # the run lock guards the pipeline across DAGs and machines as well
    default_args=with_retries,
    tags=["tikpay", "dlt"],
)
def tikpay_daily() -> None:
    load_task("", execution_timeout=timedelta(minutes=45))


@dag(
    dag_id="tikpay_catch_up",
    schedule=None,  # triggered by hand, on the backfill queue's worker
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["tikpay", "dlt"],
)
def tikpay_catch_up() -> None:
    # waits for a scheduled run that holds the lock, then spends what is left of the day's quota
    load_task(
        "--max-wait 3600",
        {"SOURCES__TIKPAY__LOCK_WAIT": "1800"},
        queue="backfill",
        execution_timeout=timedelta(hours=2),
    )


tikpay_daily()
tikpay_catch_up()
