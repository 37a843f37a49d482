"""Dagster: the daily Tikpay load as an op in a scheduled job, calling the source from Python.

The source and the pipeline are built the way the README shows; ``run_summary`` reads
the outcome back, and ``create_views`` makes the BI views as ``pipelines/tikpay.py`` does. Exit code 3 (stopped for quota) is a soft outcome: the op logs a
warning and succeeds, because everything downloaded was loaded and the state saved.
Any other non-zero code fails the op with the summary's last line.

Credentials come from the environment (``SOURCES__TIKPAY__*`` and
``DESTINATION__POSTGRES__CREDENTIALS``), e.g. set on the code location. Keep
``SOURCES__TIKPAY__LEDGER_DIR`` on a persistent volume: the quota count lives there,
while the dlt state is restored from the warehouse on a fresh machine.
"""

from __future__ import annotations

import dlt
from dagster import Definitions, Failure, OpExecutionContext, ScheduleDefinition, job, op

from tikpay_source import run_summary, tikpay
from tikpay_source.loading.views import create_views
from tikpay_source.settings import EXIT_OK, EXIT_QUOTA_STOP


@op
def load_tikpay(context: OpExecutionContext) -> None:
    pipeline = dlt.pipeline("tikpay", destination="postgres", dataset_name="tikpay_data")
    pipeline.run(tikpay())
    summary = run_summary(pipeline)
    for line in [*summary.lines(), *create_views(pipeline)]:  # the BI views, as the script makes them
        context.log.info(line)
    if summary.exit_code == EXIT_QUOTA_STOP:  # 3 = stopped for quota: a soft outcome
        context.log.warning(summary.lines()[-1])
    elif summary.exit_code != EXIT_OK:
        raise Failure(description=summary.lines()[-1])


@job
def tikpay_daily() -> None:
    load_tikpay()


defs = Definitions(
    jobs=[tikpay_daily],
    # 01:30/02:30 in Sydney: yesterday's local day is complete
    schedules=[ScheduleDefinition(job=tikpay_daily, cron_schedule="30 15 * * *")],
)
