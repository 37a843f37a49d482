"""The source's resources as dlt means them: one per table, selectable, and a clone keeping its own state."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import get_type_hints

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from harness import Harness, assert_exact, daily

from tikpay_source import plan_next_run, run_summary, tikpay
from tikpay_source.config import OPTIONS
from tikpay_source.sandbox import Fault, Sandbox
from tikpay_source.settings import EXIT_OK, EXIT_WINDOWS_FAILED, REPORT_TABLES

TWO_DAYS = {"start_time": "2025-03-01", "end_time": "2025-03-03"}


def test_each_report_table_is_a_resource_and_report_types_selects_them(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    harness = Harness(sandbox, tmp_path)
    resources = ["report_jobs", "customers", "payments", "taps", "trips", "run_history"]
    assert list(harness.source().resources) == resources
    assert set(harness.source().selected_resources) == {"report_jobs", *REPORT_TABLES.values(), "run_history"}
    only = harness.source(report_types=["TAPS", "TRIPS"])
    assert set(only.selected_resources) == {"report_jobs", "taps", "trips", "run_history"}


def test_the_source_signature_is_the_declared_settings() -> None:
    """What an IDE and dlt's config injection see is every setting, with its declared default and type."""
    parameters = inspect.signature(tikpay).parameters
    assert list(parameters) == [option.name for option in OPTIONS]
    hints = get_type_hints(tikpay)
    for option in OPTIONS:
        parameter = parameters[option.name]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, option.name
        assert parameter.default == (dlt.secrets.value if option.secret else option.default), option.name
        assert hints[option.name] == option.annotation, option.name


def test_selecting_one_table_submits_and_loads_that_report_type_alone(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    harness = Harness(sandbox, tmp_path)
    summary = harness.load(harness.source(**TWO_DAYS).with_resources("report_jobs", "trips"))

    assert summary.exit_code == EXIT_OK and summary.submitted == 2 and summary.windows_loaded == 2
    assert {s["reportType"] for s in sandbox.submissions()} == {"TRIPS"}
    assert_exact(harness, "TRIPS", daily("2025-03-01", 2))
    assert not any(harness.table_exists(t) for t in ("customers", "payments", "taps"))
    assert harness.query("SELECT DISTINCT report_type FROM report_jobs") == [("TRIPS",)]

    # the other types start from their own beginning when they are selected later; TRIPS is not asked again
    later = harness.load(harness.source(**TWO_DAYS).with_resources("report_jobs", "taps"))
    assert later.submitted == 2 and {s["reportType"] for s in sandbox.submissions()} == {"TRIPS", "TAPS"}
    assert_exact(harness, "TAPS", daily("2025-03-01", 2))
    assert_exact(harness, "TRIPS", daily("2025-03-01", 2))


def test_a_table_resource_alone_loads_its_rows_without_the_jobs_table(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    harness = Harness(sandbox, tmp_path)
    summary = harness.load(harness.source(**TWO_DAYS).with_resources("payments"))

    assert summary.windows_loaded == 2 and {s["reportType"] for s in sandbox.submissions()} == {"PAYMENTS"}
    assert_exact(harness, "PAYMENTS", daily("2025-03-01", 2))
    assert not harness.table_exists("report_jobs")


def test_one_table_can_be_refreshed_alone(sandbox: Sandbox, tmp_path: Path) -> None:
    """dlt's drop_resources refresh of one table reloads that report type from its start, and no other.

    The API still holds the jobs of the first load, so the refresh adopts them: no quota spent on them.
    """
    harness = Harness(sandbox, tmp_path)
    harness.run(report_types=["TAPS", "TRIPS"], **TWO_DAYS)
    assert len(sandbox.submissions()) == 4

    refreshed = harness.load(harness.source(**TWO_DAYS).with_resources("trips"), refresh="drop_resources")

    assert (refreshed.windows_loaded, refreshed.adopted, refreshed.submitted) == (2, 2, 0)
    assert len(sandbox.submissions("TRIPS")) == len(sandbox.submissions("TAPS")) == 2
    assert_exact(harness, "TRIPS", daily("2025-03-01", 2))
    assert_exact(harness, "TAPS", daily("2025-03-01", 2))


def test_a_renamed_clone_keeps_its_own_state_summary_and_plan(sandbox: Sandbox, tmp_path: Path) -> None:
    """A clone's state lives under its own name: its summary and --plan read that, not the original's."""
    harness = Harness(sandbox, tmp_path)
    sandbox.inject(Fault("malformed_row", times=None))  # every file is bad: the run's windows fail
    clone = harness.source(report_types=["TRIPS"], **TWO_DAYS).clone(with_name="tikpay_prod")
    failed = harness.load(clone)

    assert failed.exit_code == EXIT_WINDOWS_FAILED and len(failed.window_errors) == 2
    state = harness.pipeline().state["sources"]
    assert "tikpay_prod" in state and "tikpay" not in state
    assert run_summary(harness.pipeline()).exit_code == EXIT_WINDOWS_FAILED  # found without naming it

    sandbox.clear_faults()
    again = harness.source(report_types=["TRIPS"], **TWO_DAYS).clone(with_name="tikpay_prod")
    plan = plan_next_run(harness.pipeline(), again)
    assert plan.in_flight == 0 and len(plan.windows) == 2  # the bad files' windows, to submit again
    assert harness.load(again).windows_loaded == 2
    assert_exact(harness, "TRIPS", daily("2025-03-01", 2))


def test_plan_picks_the_report_types_the_run_submits(sandbox: Sandbox, tmp_path: Path) -> None:
    """Selecting a table's resource overrides report_types, for --plan as for the run."""
    harness = Harness(sandbox, tmp_path)
    source = harness.source(report_types=["TRIPS"], **TWO_DAYS).with_resources("report_jobs", "taps")
    plan = plan_next_run(harness.pipeline(), source)
    assert {w.report_type for w in plan.windows} == {"TAPS"} and len(plan.windows) == 2
    summary = harness.load(source)
    assert summary.submitted == plan.submissions == 2 and set(summary.rows) == {"taps"}


def test_two_sources_in_one_pipeline_are_summarised_apart(sandbox: Sandbox, tmp_path: Path) -> None:
    harness = Harness(sandbox, tmp_path)
    first = harness.load(harness.source(report_types=["TRIPS"], **TWO_DAYS))
    second = harness.load(harness.source(report_types=["TAPS"], **TWO_DAYS).clone(with_name="tikpay_taps"))

    pipeline = dlt.pipeline(pipeline_name=harness.name, pipelines_dir=str(harness.pipelines_dir))
    span = ("2025-03-01T00:00:00", "2025-03-03T00:00:00")
    assert (
        run_summary(pipeline, harness.source()).rows
        == first.rows
        == {"trips": sandbox.count_rows("TRIPS", *span)}
    )
    assert second.rows == {"taps": sandbox.count_rows("TAPS", *span)}


def test_a_filter_that_keeps_a_file_from_its_table_fails_the_run_and_loses_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The window is marked loaded when its file is handed over: if no table reads it, nothing may commit."""
    harness = Harness(sandbox, tmp_path)
    source = harness.source(report_types=["TRIPS"], **TWO_DAYS)
    source.report_jobs.add_filter(lambda row: row.get("load_status") != "loaded")
    with pytest.raises(PipelineStepFailed, match="no selected resource read job"):
        harness.load(source)

    again = harness.run(report_types=["TRIPS"], **TWO_DAYS)
    assert again.windows_loaded == 2 and again.submitted == 0  # the jobs are adopted, and their rows loaded
    assert_exact(harness, "TRIPS", daily("2025-03-01", 2))


def test_a_run_closed_early_by_dlt_still_gets_its_history_row(sandbox: Sandbox, tmp_path: Path) -> None:
    """dlt's ``add_limit`` closes ``report_jobs`` mid-run: ``run_history`` must not wait for it forever."""
    harness = Harness(sandbox, tmp_path)
    source = harness.source(report_types=["TRIPS"], **TWO_DAYS)
    source.resources["report_jobs"].add_limit(1)
    summary = harness.load(source)

    assert harness.query("SELECT run_id FROM run_history") == [(summary.run_id,)]
