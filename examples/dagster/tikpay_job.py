"""Dagster: the daily Tikpay load as an op in a scheduled job, calling the source from Python.

The source and the pipeline are built the way the README shows; ``run_summary`` reads
the outcome back, and ``create_views`` makes the BI views as ``pipelines/tikpay.py`` does.

Two workers, one key: with ``ledger="destination"`` the request ledger and the run lock
live in the warehouse, so runs of this job on different run workers (the schedule's and
one launched by hand, say) count one 20-a-day quota between them, and ``run_lock`` lets
one of them load at a time: the other waits ``lock_wait`` seconds for it, then loads what
is still due, or gives way. No worker needs a disk that outlives it: the dlt state is
restored from the warehouse.

Exit code 3 (stopped for quota) and a lock held by another worker are soft outcomes: the
op logs a warning and succeeds, because everything downloaded was loaded and the state
saved. Any other non-zero code fails the op with the summary's last line.

Credentials come from the environment (``SOURCES__TIKPAY__*`` and
``DESTINATION__POSTGRES__CREDENTIALS``), e.g. set on the code location.
"""

from __future__ import annotations

import dlt
from dagster import Definitions, Failure, OpExecutionContext, ScheduleDefinition, job, op

from tikpay_source import RunLocked, run_lock, run_summary, tikpay
from tikpay_source.loading.views import create_views
from tikpay_source.settings import EXIT_OK, EXIT_QUOTA_STOP


@op
def load_tikpay(context: OpExecutionContext) -> None:
    pipeline = dlt.pipeline("tikpay", destination="postgres", dataset_name="tikpay_data")
    source = tikpay(ledger="destination")  # one quota count and one lock for every worker
    try:
        with run_lock(pipeline, source):  # before dlt restores the state from the warehouse
            pipeline.run(source)
    except RunLocked as locked:  # another worker is loading this pipeline: it loads what is due
        context.log.warning(str(locked))
        return
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
