"""The window planner: wall-clock windows, aligned, contiguous, and right across DST changes."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from tikpay_source.errors import ConfigError
from tikpay_source.windows import (
    Window,
    default_end,
    floor_to_grid,
    format_local,
    parse_duration,
    parse_local,
    parse_window_size,
    split_windows,
)


def test_daily_windows_are_contiguous_half_open_and_aligned_to_midnight() -> None:
    windows = list(split_windows("TRIPS", datetime(2025, 1, 1), datetime(2025, 1, 4), timedelta(days=1)))
    assert [(format_local(w.start), format_local(w.end)) for w in windows] == [
        ("2025-01-01T00:00:00", "2025-01-02T00:00:00"),
        ("2025-01-02T00:00:00", "2025-01-03T00:00:00"),
        ("2025-01-03T00:00:00", "2025-01-04T00:00:00"),
    ]
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))


def test_unaligned_start_and_end_give_one_short_window_at_each_edge() -> None:
    windows = list(
        split_windows("TAPS", datetime(2025, 1, 1, 5), datetime(2025, 1, 2, 13), timedelta(hours=6))
    )
    assert [(w.start.hour, w.end.hour) for w in windows] == [
        (5, 6),
        (6, 12),
        (12, 18),
        (18, 0),
        (0, 6),
        (6, 12),
        (12, 13),
    ]


def test_a_local_day_across_a_dst_change_is_one_window_from_midnight_to_midnight() -> None:
    # Sydney: clocks go back on 2025-04-06 (a 25-hour day) and forward on 2025-10-05 (23 hours).
    for day in (datetime(2025, 4, 6), datetime(2025, 10, 5)):
        (window,) = split_windows("TAPS", day, day + timedelta(days=1), timedelta(days=1))
        assert (format_local(window.start), format_local(window.end)) == (
            format_local(day),
            format_local(day + timedelta(days=1)),
        )


def test_sub_day_windows_across_dst_stay_on_the_wall_clock_grid() -> None:
    """Hourly windows step through wall-clock time: 02:00-03:00 exists once in the plan on both change days."""
    for day in (datetime(2025, 4, 6), datetime(2025, 10, 5)):
        windows = list(split_windows("TAPS", day, day + timedelta(days=1), timedelta(hours=1)))
        assert len(windows) == 24
        assert len({w.start for w in windows}) == 24


def test_weekly_windows_align_to_mondays() -> None:
    windows = list(split_windows("TRIPS", datetime(2025, 1, 1), datetime(2025, 1, 20), timedelta(days=7)))
    assert [w.start.date().isoformat() for w in windows] == ["2025-01-01", "2025-01-06", "2025-01-13"]
    assert windows[1].start.weekday() == 0


def test_default_end_is_the_last_complete_window_before_now_minus_lag() -> None:
    now = datetime(2025, 3, 10, 0, 30)
    assert default_end(now, timedelta(hours=1), timedelta(days=1)) == datetime(2025, 3, 9)
    assert default_end(now, timedelta(0), timedelta(hours=6)) == datetime(2025, 3, 10)
    assert floor_to_grid(datetime(2025, 3, 10, 13, 59), timedelta(hours=6)) == datetime(2025, 3, 10, 12)


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
    from tikpay_source.state import window_from_key

    assert window_from_key(window.key) == window
