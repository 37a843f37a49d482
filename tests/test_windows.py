"""The window planner: wall-clock windows, aligned, contiguous, and right across DST changes."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tikpay_source.errors import ConfigError
from tikpay_source.planning.windows import (
    DEFAULT_ANCHOR,
    Grid,
    Window,
    coalesce,
    format_local,
    last_boundary_over,
    parse_duration,
    parse_local,
    parse_window_size,
    span_limit,
    window_over_at,
)

DAY = timedelta(days=1)
MIDNIGHT_DAYS = Grid(DEFAULT_ANCHOR, DAY)


def spans(windows: list[Window]) -> list[tuple[str, str]]:
    return [(format_local(w.start), format_local(w.end)) for w in windows]


def test_daily_windows_are_contiguous_half_open_and_aligned_to_midnight() -> None:
    windows = list(MIDNIGHT_DAYS.split("TRIPS", datetime(2025, 1, 1), datetime(2025, 1, 4)))
    assert spans(windows) == [
        ("2025-01-01T00:00:00", "2025-01-02T00:00:00"),
        ("2025-01-02T00:00:00", "2025-01-03T00:00:00"),
        ("2025-01-03T00:00:00", "2025-01-04T00:00:00"),
    ]
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))


def test_the_grid_starts_at_the_users_start_time() -> None:
    """A transit service day runs 04:00 to 04:00; a P2D run from 04-04 goes 04-04, 04-06, 04-08."""
    service_days = Grid(datetime(2025, 1, 1, 4), DAY)
    assert spans(list(service_days.split("TRIPS", datetime(2025, 1, 1, 4), datetime(2025, 1, 3, 4)))) == [
        ("2025-01-01T04:00:00", "2025-01-02T04:00:00"),
        ("2025-01-02T04:00:00", "2025-01-03T04:00:00"),
    ]
    two_days = Grid(datetime(2025, 4, 4), 2 * DAY)
    assert [w.start.day for w in two_days.split("TRIPS", datetime(2025, 4, 4), datetime(2025, 4, 8))] == [
        4,
        6,
    ]
    six_hours = Grid(datetime(2025, 1, 1, 5), timedelta(hours=6))
    windows = list(six_hours.split("TAPS", datetime(2025, 1, 1, 5), datetime(2025, 1, 2, 13)))
    assert [(w.start.hour, w.end.hour) for w in windows] == [
        (5, 11),
        (11, 17),
        (17, 23),
        (23, 5),
        (5, 11),
        (11, 13),
    ]


def test_a_local_day_across_a_dst_change_is_one_window_from_midnight_to_midnight() -> None:
    # Sydney: clocks go back on 2025-04-06 (a 25-hour day) and forward on 2025-10-05 (23 hours).
    for day in (datetime(2025, 4, 6), datetime(2025, 10, 5)):
        (window,) = MIDNIGHT_DAYS.split("TAPS", day, day + DAY)
        assert (window.start, window.end) == (day, day + DAY)


def test_sub_day_windows_across_dst_stay_on_the_wall_clock_grid() -> None:
    """Hourly windows step through wall-clock time: 02:00-03:00 exists once in the plan on both change days."""
    hours = Grid(DEFAULT_ANCHOR, timedelta(hours=1))
    for day in (datetime(2025, 4, 6), datetime(2025, 10, 5)):
        windows = list(hours.split("TAPS", day, day + DAY))
        assert len(windows) == 24 and len({w.start for w in windows}) == 24


def test_weekly_windows_without_a_start_time_align_to_mondays() -> None:
    weeks = Grid(DEFAULT_ANCHOR, 7 * DAY)
    windows = list(weeks.split("TRIPS", datetime(2025, 1, 1), datetime(2025, 1, 20)))
    assert [w.start.date().isoformat() for w in windows] == ["2025-01-01", "2025-01-06", "2025-01-13"]


def test_owed_windows_merge_into_spans_cut_at_blocks_of_the_limit() -> None:
    days = list(MIDNIGHT_DAYS.split("TRIPS", datetime(2025, 1, 1), datetime(2025, 3, 1)))
    merged = coalesce(days, MIDNIGHT_DAYS, 30 * DAY)
    assert all(a.end == b.start for a, b in itertools.pairwise(merged)) and merged[-1].end == datetime(
        2025, 3, 1
    )
    assert all((w.end - w.start) <= 30 * DAY and (w.end - w.start) % DAY == timedelta(0) for w in merged)
    # the same windows planned later, from a later start, are cut at the same block boundaries
    later = coalesce(days[10:], MIDNIGHT_DAYS, 30 * DAY)
    assert {w.end for w in later} <= {w.end for w in merged}
    assert coalesce(days[:3], MIDNIGHT_DAYS, DAY) == days[:3]


def test_span_length_follows_the_bytes_per_day_of_earlier_files() -> None:
    limit = {"window": DAY, "max_window": 366 * DAY, "target_bytes": 2e9, "probe": 7 * DAY}
    assert span_limit(None, **limit) == 7 * DAY  # nothing known: a probe
    assert span_limit(1e6, **limit) == 366 * DAY  # small files: the longest the user allows
    assert span_limit(1e8, **limit) == 20 * DAY  # 100 MB a day: 20 days make 2 GB
    assert span_limit(1e12, **limit) == DAY  # never less than one window
    assert span_limit(0.0, **limit) == span_limit(0.5, **limit) == 366 * DAY  # a tiny file overflows nothing


SYDNEY = ZoneInfo("Australia/Sydney")


@pytest.mark.parametrize(
    "zone, window, boundary, over",
    [
        # clocks that change at midnight: the day that ends at the change is over at the change
        ("America/Santiago", DAY, datetime(2025, 9, 7), datetime(2025, 9, 7, 4)),
        ("America/Asuncion", DAY, datetime(2024, 10, 6), datetime(2024, 10, 6, 4)),
        ("America/Havana", DAY, datetime(2025, 3, 9), datetime(2025, 3, 9, 5)),
        ("Asia/Beirut", DAY, datetime(2025, 3, 30), datetime(2025, 3, 29, 22)),
        ("Africa/Cairo", DAY, datetime(2025, 4, 25), datetime(2025, 4, 24, 22)),
        # an hour the spring-forward skips, in Sydney; a 30-minute change on Lord Howe
        ("Australia/Sydney", timedelta(hours=1), datetime(2025, 10, 5, 2), datetime(2025, 10, 4, 16)),
        (
            "Australia/Lord_Howe",
            timedelta(minutes=30),
            datetime(2025, 10, 5, 2),
            datetime(2025, 10, 4, 15, 30),
        ),
        # a boundary inside the repeated hour is over after its second pass (Chatham falls back 03:45 -> 02:45)
        ("Pacific/Chatham", timedelta(hours=1), datetime(2025, 4, 6, 3), datetime(2025, 4, 5, 14, 15)),
        # Samoa skipped 2011-12-30 entirely
        ("Pacific/Apia", DAY, datetime(2011, 12, 30), datetime(2011, 12, 30, 10)),
    ],
)
def test_a_window_is_requested_only_once_its_last_instant_plus_lag_has_passed(
    zone: str, window: timedelta, boundary: datetime, over: datetime
) -> None:
    tz, lag = ZoneInfo(zone), timedelta(hours=1)
    grid = Grid(DEFAULT_ANCHOR, window)
    over_utc = over.replace(tzinfo=timezone.utc)
    assert window_over_at(boundary, tz) == over_utc
    assert (
        last_boundary_over(over_utc + lag, tz, lag, grid) >= boundary
    )  # (an empty skipped hour ends with it)
    just_before = last_boundary_over(over_utc + lag - timedelta(seconds=1), tz, lag, grid)
    assert just_before < boundary


def test_the_end_bound_is_the_last_window_over_before_now_minus_lag() -> None:
    now = datetime(2025, 3, 10, 0, 30, tzinfo=SYDNEY)
    assert last_boundary_over(now, SYDNEY, timedelta(hours=1), MIDNIGHT_DAYS) == datetime(2025, 3, 9)
    six_hours = Grid(DEFAULT_ANCHOR, timedelta(hours=6))
    assert last_boundary_over(now, SYDNEY, timedelta(0), six_hours) == datetime(2025, 3, 10)
    assert six_hours.floor(datetime(2025, 3, 10, 13, 59)) == datetime(2025, 3, 10, 12)


@pytest.mark.parametrize(
    "text, seconds", [("P1D", 86400), ("PT6H", 21600), ("P7D", 604800), ("P1W", 604800), ("PT30M", 1800)]
)
def test_window_sizes_accepted(text: str, seconds: int) -> None:
    assert parse_window_size(text).total_seconds() == seconds


@pytest.mark.parametrize(
    "text, says",
    [
        ("1 day", "not an ISO 8601 duration"),
        ("P1M", "months or years"),
        ("PT7H", "does not divide a day"),
        ("P1DT12H", "not a whole number of days"),
        ("PT0S", "longer than zero"),
        ("2025-01-01", "not an ISO 8601 duration"),
    ],
)
def test_bad_window_sizes_name_the_value_and_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_window_size(text)
    message = str(caught.value)
    assert says in message and repr(text) in message and "\n" not in message


def test_local_times_refuse_offsets_and_garbage() -> None:
    assert parse_local("2025-01-01") == datetime(2025, 1, 1)
    assert parse_local("2025-01-01T04:00:00") == datetime(2025, 1, 1, 4)
    with pytest.raises(ConfigError, match="UTC offset"):
        parse_local("2025-01-01T04:00:00+10:00", "start_time")
    with pytest.raises(ConfigError, match="'yesterday'"):
        parse_local("yesterday", "start_time")
    with pytest.raises(ConfigError, match="lag"):
        parse_duration("soon", "lag")


def test_window_key_round_trips_through_state() -> None:
    window = Window(datetime(2025, 4, 6), datetime(2025, 4, 7), "TAPS")
    assert window.key == "TAPS|2025-04-06T00:00:00|2025-04-07T00:00:00"
    from tikpay_source.planning.state import window_from_key

    assert window_from_key(window.key) == window
