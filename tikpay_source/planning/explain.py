"""A run plan as lines a person can act on: the jobs, the requests, what the run loads, the backfill.

``--plan`` prints these for the :class:`~tikpay_source.planning.budget.RunPlan` a run would
follow; the plan itself (what fits, what it costs) is the budget's.
"""

from __future__ import annotations

import math
from datetime import timedelta

from tikpay_source.planning.budget import RunPlan
from tikpay_source.planning.windows import DAY, Window, format_local, iso_duration
from tikpay_source.settings import QUOTA_LIMIT


def plan_lines(plan: RunPlan) -> list[str]:
    """A plan a person can act on: the jobs, the requests, what the run loads, the whole backfill."""
    out = []
    held = {w.report_type: w for w in plan.held_back}
    by_type: dict[str, list[Window]] = {}
    for window in plan.windows:
        by_type.setdefault(window.report_type, []).append(window)
    for report_type, owed in sorted(by_type.items()):
        line = f"{report_type}: {len(owed)} job(s) from {format_local(owed[0].start)} to {format_local(owed[-1].end)}"
        longest = max(w.end - w.start for w in owed)
        if report_type in held:
            rest = held[report_type]
            line += (
                f" (a probe of {iso_duration(longest)}; {format_local(rest.start)} to {format_local(rest.end)} "
                "follows in jobs sized from its file)"
            )
        elif longest > plan.window_size:
            line += f" (windows of {iso_duration(plan.window_size)} merged into jobs of up to {iso_duration(longest)})"
        out.append(line)
    if not plan.windows:
        out.append("no window to submit" + ("" if plan.in_flight else f"; {plan.nothing_owed()}"))
    if plan.in_flight:
        out.append(f"{plan.in_flight} job(s) in flight from earlier runs, to be collected")
    out.append(_requests_line(plan))
    quota = f"quota left: {plan.quota_left} of {QUOTA_LIMIT} in the last 24 hours, by the request ledger in {plan.ledger_where}"
    if plan.blocked_until:
        quota += f"; the API asked to wait until {plan.blocked_until.isoformat(timespec='seconds')}"
    out.append(quota)
    if plan.submissions:
        covered = sum((w.end - w.start for w in plan.windows[: plan.submissions]), timedelta(0)) / DAY
        loads = f"this run loads: {plan.submissions} job(s) covering {covered:g} day(s) of reports"
        if not plan.polls_after_submitting:
            loads += "; the next run collects them"
        else:
            loads += " once they are done" + (
                ", then the rest in jobs sized from the probes' files" if plan.held_back else ""
            )
        out.append(loads)
    out += list(plan.notes)
    if plan.jobs_in_all > plan.submissions:
        out.append(
            f"backfill: {plan.jobs_in_all} job(s) in all need about {plan.days_of_quota} day(s) of quota, "
            f"{plan.days_of_quota} daily run(s) "
            f"at {plan.windows_per_day} jobs a day (at best {math.ceil(plan.jobs_in_all / QUOTA_LIMIT)}); "
            "a longer max_window means fewer jobs"
        )
    return out


def _requests_line(plan: RunPlan) -> str:
    if plan.requests == 0:
        return "this run: no request needed"
    parts = [f"{plan.submissions} submission(s)"]
    if plan.adoption_check:
        parts.append("1 job-list call first, to adopt jobs an interrupted run may have left")
    elif plan.lists_first:
        parts.append("1 job-list call first, to collect the jobs in flight")
    if plan.confirms_timezone and plan.submissions > 1:
        parts.append("1 job-list call after the first job, to confirm the operator's timezone")
    if plan.polls_after_submitting and plan.submissions:
        parts.append("at least 1 job-list call to collect the jobs")
    return f"this run: {', '.join(parts)} = {plan.requests} request(s) of a budget of {plan.budget}"
