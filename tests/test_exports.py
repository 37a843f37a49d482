"""The files DuckDB writes for destinations that load them as they are hold exactly the rows of the Arrow path.

Parquet into DuckDB, CSV into PostgreSQL (a real server, $TIKPAY_TEST_POSTGRES): each is
loaded beside the Arrow batches every other destination gets, and the tables compared.
The UTC offsets both files give local date-times are checked against the Arrow path's
reading over two years in ten zones.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dlt
import pyarrow as pa
import pytest
from harness import Harness, assert_exact, daily, files_per_step, parquet_writers
from warehouses import DuckDBWarehouse, PostgresWarehouse, Warehouse

from tikpay_source.files.readers import localise_timestamps, open_report
from tikpay_source.loading.destinations import ReadyFile
from tikpay_source.loading.exports import FileTarget, ready_file_items, utc_offsets, write_ready_files
from tikpay_source.loading.tables import REPORT_HINTS, tag_batch
from tikpay_source.planning.windows import Window
from tikpay_source.sandbox import Sandbox

ZONE = "Australia/Sydney"
TRICKY_CSV = (
    "id,at,note,amount,day,flag\r\n"
    '1,2025-04-06T02:30:00,"Central, Platform 3",1.5,25/12/2025,true\r\n'  # a time the fall-back repeats
    '2,2025-10-05T02:30:00,"Circular Quay ""Wharf 4""",-2.25,01/02/2025,false\r\n'  # one the spring-forward skips
    '3,2025-04-06T03:30:00,"two\nlines",,,true\r\n'
    "4,2025-01-01T04:00:00, Zoë Müller ,0.1,13/01/2025,\r\n"
    '5,,"a\\N b \\. NULL",1e-7,31/03/2025,false\r\n'
    '6,2025-04-06T01:59:59,"",3,29/02/2024,true\r\n'
    "7,2025-10-05T03:30:00,\\,4,01/01/1900,false\r\n"  # an hour after the spring-forward
    "8,1850-03-03T00:00:00,old,5,01/01/1850,true\r\n"  # before standard time: Sydney's offset was +10:04:52
)
# what each destination that loads a file as it is gets, and which files its tables are loaded from
READY_FILES = {
    "duckdb": (
        ReadyFile("parquet"),
        {"arrow": ({"parquet"}, {"parquet-cpp-arrow"}), "file": ({"parquet"}, {"DuckDB"})},
    ),
    "postgres": (ReadyFile("csv"), {"arrow": ({"parquet"}, set()), "file": ({"csv"}, set())}),
}

ZONES = [
    "Australia/Sydney",
    "Australia/Lord_Howe",  # a half-hour change
    "Pacific/Chatham",  # +12:45 and +13:45
    "America/Santiago",
    "America/Havana",  # changes at midnight: the skipped hour is 00:00
    "Asia/Beirut",
    "Pacific/Apia",  # dropped daylight saving in 2021
    "Europe/London",
    "Asia/Kolkata",  # no change at all
    "UTC",
]


def offset_seconds(text: str) -> int:
    sign = -1 if text[0] == "-" else 1
    parts = [int(p) for p in text[1:].split(":")] + [0]
    return sign * (parts[0] * 3600 + parts[1] * 60 + parts[2])


@pytest.mark.parametrize("zone", ZONES)
def test_every_wall_time_gets_the_instant_the_arrow_path_reads_it_as(zone: str) -> None:
    """Every quarter hour over two years (every offset change falls on one), fall-backs and spring-forwards included."""
    earliest, latest = datetime(2020, 12, 30, 0, 0), datetime(2022, 12, 31, 23, 55)
    walls = [
        earliest + timedelta(minutes=15 * i)
        for i in range(int((latest - earliest) / timedelta(minutes=15)) + 1)
    ]
    batch = pa.record_batch([pa.array(walls, pa.timestamp("us"))], names=["t"])
    expected = localise_timestamps(batch, zone).column(0).cast(pa.int64()).to_pylist()

    first, changes = utc_offsets(ZoneInfo(zone), earliest, latest)
    starts = [wall for wall, _ in changes]
    offsets = [first, *(offset for _, offset in changes)]
    epoch = datetime(1970, 1, 1)
    got = [
        ((wall - epoch) // timedelta(microseconds=1))
        - offset_seconds(offsets[bisect.bisect_right(starts, wall)]) * 1_000_000
        for wall in walls
    ]

    assert got == expected
    assert (len(changes) > 0) == (zone not in ("Asia/Kolkata", "UTC"))


def test_only_the_changes_inside_the_range_are_listed_and_the_first_offset_is_that_at_its_start() -> None:
    first, changes = utc_offsets(ZoneInfo("Australia/Sydney"), datetime(2025, 3, 3), datetime(2025, 3, 5, 2))
    assert (first, changes) == ("+11:00", [])
    first, changes = utc_offsets(
        ZoneInfo("Australia/Sydney"), datetime(2025, 4, 6, 2, 30), datetime(2025, 10, 6)
    )
    assert first == "+11:00"  # 02:30 on the fall-back day is the earlier instant, still daylight time
    assert changes == [(datetime(2025, 4, 6, 3, 0), "+10:00"), (datetime(2025, 10, 5, 3, 0), "+11:00")]


def warehouse_for(kind: str, where: Path, request: pytest.FixtureRequest) -> Warehouse:
    if kind == "duckdb":
        return DuckDBWarehouse(where / "tikpay.duckdb")
    return PostgresWarehouse(request.getfixturevalue("postgres_dsn"), where)


@pytest.mark.e2e  # loads into DuckDB and the test PostgreSQL through dlt
@pytest.mark.parametrize("kind", list(READY_FILES))
def test_a_ready_file_holds_the_same_rows_as_the_arrow_batches(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Same types, same values: times a daylight-saving change repeats or skips, text, dates, booleans."""
    source = tmp_path / "report.csv"
    source.write_bytes(TRICKY_CSV.encode())
    window = Window(datetime(2025, 1, 1), datetime(2025, 12, 1), "PAYMENTS")
    ready, files = READY_FILES[kind]

    def batches() -> Iterator[Any]:
        report = open_report(source, "csv", ZONE)
        try:
            yield from (tag_batch(batch, window, "job-1") for batch in report.batches())
        finally:
            report.close()

    def ready_file() -> Iterator[Any]:
        report = open_report(source, "csv", ZONE)
        files = write_ready_files(
            report, window, "job-1", FileTarget(ready, dlt.current.source_schema().naming, ZONE)
        )
        try:
            yield from ready_file_items(report, files, ZONE)
        finally:
            report.close()
            files.close()

    loaded, types = {}, {}
    for name, rows in (("arrow", batches), ("file", ready_file)):
        target = warehouse_for(kind, tmp_path / name, request)
        pipeline = dlt.pipeline(
            f"tikpay_{name}",
            pipelines_dir=str(tmp_path / name),
            destination=target.destination(),
            dataset_name=target.dataset,
        )
        pipeline.run(dlt.resource(rows, name="payments", **REPORT_HINTS))
        extracted = files_per_step(pipeline, "payments")[0]
        assert (extracted, parquet_writers(pipeline, "payments")) == files[name], name
        loaded[name] = target.query("SELECT * FROM payments ORDER BY id")
        types[name] = target.query(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            f"WHERE table_schema = '{target.dataset}' AND table_name = 'payments' ORDER BY ordinal_position"
        )
    # DuckDB writes every Parquet column as optional: there dlt is told the tag columns (never NULL) may be
    nullable = {
        (c, t, "YES" if c.startswith("_tikpay_") and kind == "duckdb" else n) for c, t, n in types["arrow"]
    }
    assert set(types["file"]) == nullable
    assert loaded["file"] == loaded["arrow"]
    rows = loaded["file"]
    assert [row[1] for row in rows][:2] == [
        datetime.fromisoformat("2025-04-06T02:30:00+11:00"),  # the earlier of the two
        datetime.fromisoformat("2025-10-05T02:30:00+10:00"),  # the offset before the change
    ]
    assert rows[4][1] is None
    assert rows[7][1] == datetime.fromisoformat("1850-03-03T00:00:00+10:04:52")
    assert [row[2] for row in rows] == [
        "Central, Platform 3",
        'Circular Quay "Wharf 4"',
        "two\nlines",
        " Zoë Müller ",
        "a\\N b \\. NULL",
        None,
        "\\",
        "old",
    ]
    assert [row[4] for row in rows] == [
        date(2025, 12, 25),
        date(2025, 2, 1),
        None,
        date(2025, 1, 13),
        date(2025, 3, 31),
        date(2024, 2, 29),
        date(1900, 1, 1),
        date(1850, 1, 1),
    ]
    assert [row[5] for row in rows] == [True, False, True, None, False, True, False, True]


def test_a_report_goes_to_duckdb_as_one_parquet_file_that_duckdb_wrote(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    h = Harness(sandbox, tmp_path, warehouse=DuckDBWarehouse(tmp_path / "tikpay.duckdb"))
    h.run(report_types=["TRIPS", "CUSTOMERS"], start_time="2025-03-01", end_time="2025-03-03")

    for table in ("trips", "customers"):
        # appended (no window was there): no staging copy, no merge job
        assert files_per_step(h.pipeline(), table) == ({"parquet"}, {"parquet"}), table
        assert parquet_writers(h.pipeline(), table) == {"DuckDB"}, table
    assert_exact(h, "TRIPS", daily("2025-03-01", 2))
    assert_exact(h, "CUSTOMERS", daily("2025-03-01", 2))
