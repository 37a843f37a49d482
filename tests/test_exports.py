"""The UTC offsets the PostgreSQL CSV file appends to local date-times agree with the Arrow path's reading."""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from tikpay_source.exports import utc_offsets
from tikpay_source.readers import localise_timestamps

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
    """Every 5 minutes over two years, fall-backs (earlier instant) and spring-forwards (old offset) included."""
    earliest, latest = datetime(2020, 12, 30, 0, 0), datetime(2022, 12, 31, 23, 55)
    walls = [
        earliest + timedelta(minutes=5 * i)
        for i in range(int((latest - earliest) / timedelta(minutes=5)) + 1)
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
