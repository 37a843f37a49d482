"""Every value exactly as the file says: files served by the sandbox, loaded end to end, read back.

Each test serves its own file body for a report type (``Fault("content", body=...)``),
runs the real source over real HTTP into DuckDB and PostgreSQL, and compares every value
read back from the warehouse, rendered as text, with the file's own text, exactly.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from harness import Harness

from tikpay_source.columns.types import BOOL_STYLES
from tikpay_source.sandbox import Fault, Sandbox
from tikpay_source.settings import EXIT_OK, EXIT_WINDOWS_FAILED, FORMAT_HINT, MAX_SUBMIT_ATTEMPTS

ONE_DAY = {"start_time": "2025-03-01", "end_time": "2025-03-02"}
ZONE = "Australia/Sydney"

# column -> (its values, the dlt type it must load as)
CASES: dict[str, tuple[list[str], str]] = {
    "id": (["1", "2", "3"], "bigint"),
    "hex": (["0x10", "0x1F", "0xff"], "text"),
    "signed": (["+5", "1,000", "7"], "text"),
    "leading_zero": (["007", "8", "9"], "text"),
    "negative_zero": (["-0", "0", "1"], "text"),
    "long_integer": (["12345678901234567890123", "-1", "0"], "decimal"),
    "exact_decimal": (
        ["0.12345678901234567891", "1.00000000000000000000", "-2.50000000000000000000"],
        "decimal",
    ),
    "past_double": (["9007199254740993.5", "0.5", "-1.0"], "decimal"),
    "mixed_scale": (["3.5", "3.50", "3"], "text"),
    "nanoseconds": (["2025-03-01T04:00:00.123456789", "2025-03-01T04:00:00.000000001", ""], "text"),
    "microseconds": (
        ["2025-03-01T04:00:00.123456", "2025-03-01T05:00:00.000001", "2025-03-01T06:00:00.000000"],
        "timestamp",
    ),
    "milliseconds": (["2025-03-01 04:00:00.123", "2025-03-01 23:59:59.999", ""], "timestamp"),
    "seconds": (["2025-03-01T04:00:00", "2025-04-06T02:30:00", "2025-03-01T00:00:00"], "timestamp"),
    "slash_date": (["2025/01/31", "2025/02/01", ""], "date"),
    "day_first": (["31/01/2025", "01/02/2025", "13/02/2025"], "date"),
    "month_first": (["01/31/2025", "02/01/2025", "12/13/2025"], "date"),
    "ambiguous_date": (["01/02/2025", "03/04/2025", "05/06/2025"], "text"),
    "short_bool": (["t", "f", "t"], "text"),
    "yes_no": (["yes", "no", "yes"], "text"),
    "lower_bool": (["true", "false", ""], "bool"),
    "title_bool": (["True", "False", "True"], "bool"),
    "upper_bool": (["TRUE", "FALSE", "FALSE"], "bool"),
    "mixed_case_bool": (["true", "True", "false"], "text"),
    "empty": (["", "", ""], "text"),
}


def csv_body(columns: dict[str, list[str]]) -> bytes:
    """An RFC 4180 file: header, CRLF line ends, fields quoted only where they need it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(zip(*columns.values(), strict=True))
    return out.getvalue().encode()


def xml_body(columns: dict[str, list[str]]) -> bytes:
    from xml.sax.saxutils import escape

    names = list(columns)
    records = [
        "<record>" + "".join(f"<{n}>{escape(columns[n][i])}</{n}>" for n in names) + "</record>\n"
        for i in range(len(columns[names[0]]))
    ]
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<report>\n' + "".join(records) + "</report>\n").encode()


def as_text(value: Any, column: dict[str, Any]) -> str:
    """A warehouse value as the file's text, by the column's type and recorded format."""
    fmt = column.get(FORMAT_HINT) or ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return BOOL_STYLES[fmt][0 if value else 1]
    if isinstance(value, datetime):
        local = value.astimezone(ZoneInfo(ZONE))
        micros = f"{local.microsecond:06d}"
        return local.strftime(fmt.replace("%f", micros).replace("%g", micros[:3]))
    if isinstance(value, date):
        return value.strftime(fmt)
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def read_back(h: Harness, table: str, file_columns: list[str]) -> dict[str, list[str]]:
    """Every file column of ``table`` as text, rows in the order of their ``id``."""
    schema = h.pipeline().default_schema.tables[table]["columns"]
    rows = h.query(f"SELECT {', '.join(file_columns)} FROM {table} ORDER BY id")
    return {name: [as_text(row[i], schema[name]) for row in rows] for i, name in enumerate(file_columns)}


def loaded_types(h: Harness, table: str) -> dict[str, str]:
    columns = h.pipeline().default_schema.tables[table]["columns"]
    return {name: column.get("data_type") for name, column in columns.items()}


@pytest.mark.warehouses("duckdb", "postgres")
@pytest.mark.parametrize("file_type", ["csv", "xml"])
def test_every_value_loads_exactly_as_the_file_writes_it(
    sandbox: Sandbox, tmp_path: Path, file_type: str
) -> None:
    """The typing table of the README, case by case: the type is lossless, or the column is text."""
    columns = {name: values for name, (values, _) in CASES.items()}
    body = csv_body(columns) if file_type == "csv" else xml_body(columns)
    sandbox.inject(Fault("content", report_type="TRIPS", body=body, times=None))
    h = Harness(sandbox, tmp_path)
    summary = h.run(report_types=["TRIPS"], file_type=file_type, **ONE_DAY)
    assert summary.exit_code == EXIT_OK, summary.lines()
    types = loaded_types(h, "trips")
    assert {name: types.get(name) for name in CASES} == {name: kind for name, (_, kind) in CASES.items()}
    assert read_back(h, "trips", list(CASES)) == columns


@pytest.mark.warehouses("duckdb", "postgres")
def test_a_column_widens_across_runs_and_keeps_every_loaded_value(sandbox: Sandbox, tmp_path: Path) -> None:
    """Run by run, later files need wider types: each column widens in place, no window is refused."""
    files = [
        {
            "id": ["1", "2"],
            "stop_id": ["1210", "33"],
            "amount": ["3.50", "-0.25"],
            "big": ["1.25", "2.00"],
            "tap_time": ["2025-03-01T04:00:00", "2025-04-06T02:30:00"],
            "service_day": ["2025/03/01", "2025/03/02"],
            "concession": ["True", "False"],
        },
        {
            "id": ["3", "4"],
            "stop_id": ["021210", "44"],
            "amount": ["12.5", "7"],
            "big": ["123456789012345678901.25", "0.01"],
            "tap_time": ["2025-03-02T04:00:00.000000001", "2025-03-02T05:00:00"],
            "service_day": ["01/02/2025", "2025/03/03"],
            "concession": ["yes", "False"],
        },
        {
            "id": ["5"],
            "stop_id": ["55"],
            "amount": ["1"],
            "big": ["9.99"],
            "tap_time": ["2025-03-03T04:00:00"],
            "service_day": ["2025/03/04"],
            "concession": ["True"],
        },
    ]
    h = Harness(sandbox, tmp_path)
    expected_types = [
        {"stop_id": "bigint", "amount": "decimal", "big": "decimal", "tap_time": "timestamp"},
        {"stop_id": "text", "amount": "text", "big": "decimal", "tap_time": "text"},
        {"stop_id": "text", "amount": "text", "big": "decimal", "tap_time": "text"},
    ]
    for day, (body, types) in enumerate(zip(files, expected_types, strict=True), start=1):
        sandbox.inject(Fault("content", report_type="TRIPS", body=csv_body(body), times=1))
        summary = h.run(report_types=["TRIPS"], start_time="2025-03-01", end_time=f"2025-03-0{day + 1}")
        assert summary.exit_code == EXIT_OK, summary.lines()
        assert summary.windows_loaded == 1
        assert {name: loaded_types(h, "trips")[name] for name in types} == types
    every = {name: [v for body in files for v in body[name]] for name in files[0]}
    assert read_back(h, "trips", list(every)) == every
    column = h.pipeline().default_schema.tables["trips"]["columns"]["big"]
    assert (column["precision"], column["scale"]) == (38, 2)


@pytest.mark.warehouses("duckdb", "postgres")
def test_names_that_collide_get_distinct_columns_and_other_types_load_in_the_same_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """``a b``/``a_b`` and ``Zoë``/``Zoé`` meet after normalisation; each keeps a column of its own."""
    body = csv_body(
        {"id": ["1", "2"], "a b": ["x", "y"], "a_b": ["p", "q"], "Zoë": ["1", "2"], "Zoé": ["A", "B"]}
    )
    sandbox.inject(Fault("content", report_type="TRIPS", body=body, times=None))
    h = Harness(sandbox, tmp_path)
    summary = h.run(report_types=["TRIPS", "TAPS"], **ONE_DAY)
    assert summary.exit_code == EXIT_OK, summary.lines()
    assert summary.rows["taps"] > 0 and summary.rows["trips"] == 2
    names = [n for n in loaded_types(h, "trips") if not n.startswith("_")]
    assert len(names) == 5 and "a_b" in names
    values = read_back(h, "trips", names)
    assert values["a_b"] == ["p", "q"]  # the name already in normal form keeps it
    assert sorted(values.values()) == sorted([["1", "2"], ["x", "y"], ["p", "q"], ["1", "2"], ["A", "B"]])


@pytest.mark.warehouses("duckdb", "postgres")
def test_a_legal_three_megabyte_field_loads(sandbox: Sandbox, tmp_path: Path) -> None:
    """DuckDB's default 2,000,000-byte line limit would call this legal file malformed."""
    long = 'Lorem, ipsum\r\n"dolor" ' * 130_000
    sandbox.inject(
        Fault("content", report_type="CUSTOMERS", body=csv_body({"id": ["1", "2"], "notes": [long, "x"]}))
    )
    h = Harness(sandbox, tmp_path)
    summary = h.run(report_types=["CUSTOMERS"], **ONE_DAY)
    assert summary.exit_code == EXIT_OK, summary.lines()
    assert h.query("SELECT notes FROM customers ORDER BY id") == [(long,), ("x",)]


@pytest.mark.warehouses("duckdb", "postgres")
def test_a_bad_file_fails_only_its_window_and_no_message_quotes_it(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every download of TRIPS is malformed (a row with a field too many, holding an address)."""
    secret = "12 Hidden Lane\r\nSecretville NSW 2000"
    body = csv_body({"id": ["1", "2"], "address": ["ok", "fine"]}) + f'3,"{secret}",extra\r\n'.encode()
    sandbox.inject(Fault("content", report_type="TRIPS", body=body, times=None))
    h = Harness(sandbox, tmp_path)
    with caplog.at_level(logging.DEBUG):
        summary = h.run(report_types=["TRIPS", "TAPS"], **ONE_DAY)
    assert summary.exit_code == EXIT_WINDOWS_FAILED
    assert summary.rows.get("taps", 0) > 0 and "trips" not in summary.rows
    (error,) = summary.window_errors
    assert "line 4: too many fields (expected 2, found 3)" in error and "job " in error
    assert "it will be submitted again by the next run" in error
    assert "still in progress" not in "\n".join(summary.lines())
    assert "the next run submits them" in summary.lines()[-1]
    job_errors = h.query("SELECT status, load_status, error FROM report_jobs WHERE report_type = 'TRIPS'")
    assert [(status, load) for status, load, _ in job_errors] == [("COMPLETE", "failed")]
    assert all("too many fields" in error for _, _, error in job_errors)
    everything = "\n".join(
        [h.output.getvalue(), caplog.text, *summary.lines(), *(e for _, _, e in job_errors)]
    )
    for part in ("Hidden Lane", "Secretville", "extra"):
        assert part not in everything
    # the same bytes at the second download: the file, not the transfer, so no third download
    assert len(sandbox.download_requests) == 1 + 2  # TAPS once, TRIPS twice
    # a new job by the next run; when it gives the same bad file byte for byte, it is given up
    # at once instead of asked for again while attempts remain
    summary = h.run(report_types=["TRIPS"], **ONE_DAY)
    assert summary.exit_code == EXIT_WINDOWS_FAILED and len(summary.gave_up) == 1
    assert "same file byte for byte" in summary.gave_up[0] and "--retry-failed" in summary.gave_up[0]
    assert len(sandbox.submissions("TRIPS")) == 2 < MAX_SUBMIT_ATTEMPTS


@pytest.mark.warehouses("duckdb")
def test_xml_fast_scanner_and_full_parser_agree_on_dotted_names_and_keep_field_attributes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """``<units.price>`` before ``<unitsprice>`` stays apart; ``currency="AUD"`` is a column of its own."""
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<report>\n'
        b'<record id="1"><units.price>9.99</units.price><unitsprice>1</unitsprice>'
        b'<fare_amount currency="AUD">3.50</fare_amount></record>\n'
        b'<record id="2"><units.price>8.99</units.price><unitsprice>2</unitsprice>'
        b'<fare_amount currency="NZD">4.50</fare_amount></record>\n</report>\n'
    )
    sandbox.inject(Fault("content", report_type="TRIPS", body=body, times=None))
    h = Harness(sandbox, tmp_path)
    summary = h.run(report_types=["TRIPS"], file_type="xml", **ONE_DAY)
    assert summary.exit_code == EXIT_OK, summary.lines()
    columns = ["units_price", "unitsprice", "fare_amount", "fare_amount_currency"]
    assert read_back(h, "trips", columns) == {
        "units_price": ["9.99", "8.99"],
        "unitsprice": ["1", "2"],
        "fare_amount": ["3.50", "4.50"],
        "fare_amount_currency": ["AUD", "NZD"],
    }


@pytest.mark.warehouses("duckdb", "postgres")
def test_a_widening_within_one_run_waits_for_the_next_run_and_loses_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Two windows in one run: the second needs text where the first's rows are still bigint in this load."""
    first = {"id": ["1", "2"], "stop_id": ["1210", "33"]}
    second = {"id": ["3", "4"], "stop_id": ["021210", "44"]}
    for body in (first, second, second):  # the second window is downloaded once per run
        sandbox.inject(Fault("content", report_type="TRIPS", body=csv_body(body), times=1))
    h = Harness(sandbox, tmp_path)
    two_days = {"report_types": ["TRIPS"], "start_time": "2025-03-01", "end_time": "2025-03-03"}
    summary = h.run(**two_days)
    assert summary.exit_code == EXIT_OK and summary.windows_loaded == 1 and len(summary.pending) == 1
    assert "loaded by the next run" in summary.lines()[-1]
    summary = h.run(**two_days)
    assert summary.exit_code == EXIT_OK and summary.windows_loaded == 1 and not summary.pending
    assert loaded_types(h, "trips")["stop_id"] == "text"
    assert read_back(h, "trips", ["id", "stop_id"]) == {
        "id": ["1", "2", "3", "4"],
        "stop_id": ["1210", "33", "021210", "44"],
    }
    assert len(sandbox.submissions("TRIPS")) == 2  # the waiting window's job was loaded, not submitted again


@pytest.mark.warehouses("duckdb")
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"id,name\r\n1,ok\r\n2,Zo\xeb Secretname\r\n", "line 3: it is not valid UTF-8"),
        (b"id,n\xebme\r\n1,Secretname\r\n", "line 1: the header row is not CSV in UTF-8"),
        (b'id,name\r\n1,"Secretname\r\n', "a quoted field is not closed"),
    ],
)
def test_bad_bytes_fail_only_their_window_with_a_reason_and_no_content(
    sandbox: Sandbox, tmp_path: Path, body: bytes, reason: str
) -> None:
    sandbox.inject(Fault("content", report_type="TRIPS", body=body, times=None))
    h = Harness(sandbox, tmp_path)
    summary = h.run(report_types=["TRIPS", "TAPS"], **ONE_DAY)
    assert summary.exit_code == EXIT_WINDOWS_FAILED and summary.rows.get("taps", 0) > 0
    (error,) = summary.window_errors
    assert reason in error and "Secretname" not in h.output.getvalue() + "\n".join(summary.lines())
