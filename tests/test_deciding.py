"""Types guessed from the sample and proved as the file is written are the types every row decides.

A report written as a destination's file (Parquet for DuckDB, CSV for PostgreSQL) is
opened with the sample's types and each value is checked as DuckDB writes it. Each case
below puts, after the sample's 20,000 rows, one value that breaks one guess: the file
written must then be, type for type and value for value, the file the pass over every
row gives. No server: DuckDB writes and reads the files.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from dlt.common.normalizers.naming.snake_case import NamingConvention

from tikpay_source.columns.deciding import ColumnTypes
from tikpay_source.columns.types import BIGINT, DATE, DECIMAL, TEXT, TIMESTAMP, ColumnType
from tikpay_source.errors import ReportFileError
from tikpay_source.files.readers import ReportFile, open_report
from tikpay_source.loading.destinations import ReadyFile
from tikpay_source.loading.exports import FileTarget, ReadyFiles, write_ready_files
from tikpay_source.planning.windows import Window
from tikpay_source.settings import LOGGER_NAME, TYPING_SAMPLE_ROWS

ZONE = "Australia/Sydney"
WINDOW = Window(datetime(2025, 3, 1), datetime(2025, 3, 8), "PAYMENTS")
HEADER = "id,amount,flag,day,at,late,note"
MISSED = "typing the file from every row"  # what the connector logs (debug) when a guess does not hold
LONG_FIELD = "x" * (3 * 1024 * 1024)  # longer than DuckDB's default line limit (2 MB)


def sample_row(i: int) -> str:
    # days from the 13th on: the day and the month cannot be swapped, so the format is told apart
    return f"{1000 + i},{i % 50}.{i % 100:02d},{'true' if i % 3 else 'false'},{13 + i % 15}/03/2025,2025-03-0{1 + i % 7}T{i % 24:02d}:{i % 60:02d}:00,,n{i}"


def tail(**values: str) -> str:
    """A row for after the sample: every guess holds but for the ``values`` given."""
    row = {"id": "5", "amount": "1.00", "flag": "true", "day": "13/03/2025", "at": "2025-03-02T00:00:00"}
    return ",".join((row | {"late": "", "note": "z"} | values).values())


# after the sample: (the row, the types every row then decides where they are not the guess)
TAILS = {
    "every guess holds": (tail(id="999999", amount="0.05", at="2025-03-07T23:59:59"), {}),
    "an integer with a leading zero": (tail(id="0999"), {"id": "VARCHAR"}),
    "an integer of 19 digits": (tail(id="1234567890123456789"), {"id": "DECIMAL(38,0)"}),
    "a negative zero": (tail(id="-0"), {"id": "VARCHAR"}),
    "a decimal of another scale": (tail(amount="1.5"), {"amount": "VARCHAR"}),
    "a decimal negative zero": (tail(amount="-0.00"), {"amount": "VARCHAR"}),
    "a decimal too long for 18 digits": (tail(amount="-1234567890123456.78"), {"amount": "DECIMAL(38,2)"}),
    "a boolean in another case": (tail(flag="True"), {"flag": "VARCHAR"}),
    "a day that does not exist": (tail(day="30/02/2025"), {"day": "VARCHAR"}),
    "a date of another width": (tail(day="5/3/2025"), {"day": "VARCHAR"}),
    "a time with another separator": (tail(at="2025-03-02 00:00:00"), {"at": "VARCHAR"}),
    "a time far outside the window": (tail(at="2026-07-01T12:00:00"), {}),
    "a value in a column the sample found empty": (tail(late="42"), {"late": "BIGINT"}),
    "a line longer than the reader's first limit": (tail(note=LONG_FIELD), {}),
}
# the cases whose guesses hold: the long line is near enough for the sample's read to find it
HELD = ("every guess holds", "a line longer than the reader's first limit")
GUESSED = {
    "id": "BIGINT",
    "amount": "DECIMAL(18,2)",
    "flag": "BOOLEAN",
    "day": "DATE",
    "at": "TIMESTAMP WITH TIME ZONE",
    "late": "VARCHAR",
    "note": "VARCHAR",
}


@pytest.fixture(scope="module")
def sample_lines() -> list[str]:
    return [HEADER, *(sample_row(i) for i in range(TYPING_SAMPLE_ROWS))]


def report_file(tmp_path: Path, lines: list[str], after_sample: str) -> Path:
    path = tmp_path / "report.csv"
    path.write_text("\r\n".join([*lines, after_sample, sample_row(7)]) + "\r\n", encoding="utf-8")
    return path


def write(report: ReportFile, ready: ReadyFile, directory: Path) -> ReadyFiles:
    return write_ready_files(report, WINDOW, "job-1", FileTarget(ready, NamingConvention(), ZONE, directory))


def read_back(files: ReadyFiles) -> str:
    """DuckDB's reading of the files written (PostgreSQL reads the CSV's text: it is compared as text)."""
    paths = [str(p) for p in files.paths]
    if files.file_format == "parquet":
        return f"read_parquet({paths})"
    return f"read_csv({paths}, all_varchar = true, header = true)"


# the cases PostgreSQL's CSV files are checked in too (elsewhere they keep the file's text as it is)
CSV_CASES = ("every guess holds", "a date of another width", "a time far outside the window")


@pytest.mark.parametrize(
    ("case", "file_format"), [(case, "parquet") for case in TAILS] + [(case, "csv") for case in CSV_CASES]
)
def test_a_guessed_file_is_the_file_every_row_decides(
    case: str, file_format: str, sample_lines: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    row, changed = TAILS[case]
    path = report_file(tmp_path, sample_lines, row)
    assert_same_file(path, ReadyFile(file_format), tmp_path, caplog, GUESSED | changed, None)
    # the file was read once, or the value after the sample sent it the long way
    assert (MISSED in caplog.text) == (case not in HELD)


def assert_same_file(
    path: Path,
    ready: ReadyFile,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    types: dict[str, str],
    known: ColumnTypes | None,
) -> None:
    """The file written with guessed types is, type for type and row for row, the one every row decides."""
    guessed = open_report(path, "csv", ZONE, known_types=known, guess=True)
    decided = open_report(path, "csv", ZONE, known_types=known)
    files: list[ReadyFiles] = []
    try:
        assert not guessed.proven and decided.proven
        with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
            files = [write(guessed, ready, tmp_path)]
        files.append(write(decided, ready, tmp_path))
        assert guessed.proven and guessed.rows == decided.rows == TYPING_SAMPLE_ROWS + 2
        assert [c.kind for c in guessed.columns] == [c.kind for c in decided.columns]
        con = duckdb.connect()
        for name, written in zip(("got", "want"), files, strict=True):  # each file read once
            con.execute(f"CREATE TABLE {name} AS FROM {read_back(written)}")
        written_types = [con.sql(f"DESCRIBE {name}").fetchall() for name in ("got", "want")]
        differ = con.sql(
            "SELECT count(*) FROM ((FROM got EXCEPT ALL FROM want) UNION ALL (FROM want EXCEPT ALL FROM got))"
        ).fetchone()
        (rows,) = con.sql("SELECT count(*) FROM got").fetchone() or (0,)
        con.close()
    finally:
        for report in (guessed, decided):
            report.close()
        for written in files:
            written.close()
    assert all(not Path(written.scratch.name).exists() for written in files)
    assert written_types[0] == written_types[1]
    assert (differ, rows) == ((0,), TYPING_SAMPLE_ROWS + 2)
    if ready.file_format == "parquet":
        kinds = {name: kind for name, kind, *_ in written_types[0]}
        assert {name: kinds[name] for name in types} == types


@pytest.mark.parametrize(
    ("loaded", "kind", "missed"),
    [
        (ColumnType(BIGINT), "BIGINT", False),  # the table's type holds the value as it is: no second read
        (ColumnType(DECIMAL, 38, 0), "DECIMAL(38,0)", False),
        (ColumnType(TEXT), "VARCHAR", False),
        (ColumnType(DATE, fmt="%d/%m/%Y"), "VARCHAR", True),  # 01/02 fits two formats: the long way
        (ColumnType(TIMESTAMP, fmt="%Y-%m-%dT%H:%M:%S"), "VARCHAR", True),  # offsets need the range
    ],
)
def test_a_column_the_sample_found_empty_keeps_the_type_its_table_has_where_every_value_fits(
    loaded: ColumnType,
    kind: str,
    missed: bool,
    sample_lines: list[str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    value = "01/02/2025" if loaded.kind == DATE else "42"
    path = report_file(tmp_path, sample_lines, tail(late=value))
    assert_same_file(path, ReadyFile("parquet"), tmp_path, caplog, {"late": kind}, {"late": loaded}.get)
    assert (MISSED in caplog.text) == missed


def test_a_row_malformed_far_after_the_sample_fails_the_file_as_it_does_unguessed(
    sample_lines: list[str], tmp_path: Path
) -> None:
    # 40 MB of rows between the sample and the bad row: further than DuckDB reads ahead for the sample
    filler = [tail(note="y" * 200_000)] * 200
    bad = tail() + ",one too many"
    path = report_file(tmp_path, [*sample_lines, *filler], bad)
    guessed = open_report(path, "csv", ZONE, guess=True)
    try:
        assert not guessed.proven
        with pytest.raises(ReportFileError) as failed:
            write(guessed, ReadyFile("parquet"), tmp_path)
    finally:
        guessed.close()
    with pytest.raises(ReportFileError) as unguessed:
        open_report(path, "csv", ZONE)
    assert str(failed.value) == str(unguessed.value)
    assert f"line {TYPING_SAMPLE_ROWS + 202}: too many fields" in str(failed.value)
    assert not list(tmp_path.glob("tikpay-file-*"))


def test_a_file_no_larger_than_the_sample_is_decided_outright(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_text("\r\n".join([HEADER, *(sample_row(i) for i in range(100))]) + "\r\n", encoding="utf-8")
    report = open_report(path, "csv", ZONE, guess=True)
    try:
        assert report.proven and report.rows == 100
    finally:
        report.close()


def test_a_sample_that_cannot_tell_two_date_formats_apart_is_not_guessed_from(tmp_path: Path) -> None:
    path = tmp_path / "ambiguous.csv"
    rows = [f"{i},01/02/2025" for i in range(TYPING_SAMPLE_ROWS)] + ["0,25/02/2025"]
    path.write_text("\r\n".join(["id,day", *rows]) + "\r\n", encoding="utf-8")
    report = open_report(path, "csv", ZONE, guess=True)
    try:
        assert report.proven  # every row decided it: the last row says the day comes first
        assert report.columns[1].kind is not None and report.columns[1].kind.fmt == "%d/%m/%Y"
    finally:
        report.close()
