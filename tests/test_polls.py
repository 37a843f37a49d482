"""Poll timing: the first poll when the jobs should be done, back-off after, never a poll sure to be early."""

from __future__ import annotations

import logging

import pytest

from tikpay_source.api.polls import Clock, PollSchedule
from tikpay_source.progress import wait_for_poll
from tikpay_source.settings import LOGGER_NAME


def test_the_first_poll_comes_when_the_slowest_recent_job_would_be_done() -> None:
    polls = PollSchedule(poll_interval=60, deadline=900)
    polls.submitted(10, [5.0, 42.0, 17.0])
    assert polls.next_at(11, last_request=False) == 52  # submitted at 10 + the slowest, 42 s


def test_without_history_the_first_poll_waits_poll_interval_and_later_ones_back_off() -> None:
    polls = PollSchedule(poll_interval=60, deadline=900)
    polls.submitted(0, [])
    assert polls.next_at(0, last_request=False) == 60
    polls.polled(60)
    assert polls.next_at(60, last_request=False) == 120
    polls.polled(120)
    assert polls.next_at(120, last_request=False) == 240  # twice as long each time
    polls.polled(240)
    assert polls.next_at(240, last_request=False) == 480


def test_no_poll_before_the_quickest_recent_job_and_the_last_request_waits_for_the_expected_time() -> None:
    polls = PollSchedule(poll_interval=1, deadline=900)
    polls.submitted(0, [30.0, 90.0])
    polls.polled(90)  # still in progress at the first poll
    assert polls.next_at(90, last_request=False) == 91  # back-off from poll_interval
    assert polls.next_at(90, last_request=True) == 91  # 90 s, the slowest, has passed already
    polls.submitted(100, [30.0, 90.0])  # a resubmission restarts the clock
    assert polls.next_at(101, last_request=False) == 190
    polls.polled(190)
    assert polls.next_at(190, last_request=False) == 191


def test_a_job_longer_than_the_run_can_wait_does_not_time_its_polls() -> None:
    polls = PollSchedule(poll_interval=60, deadline=900)
    polls.submitted(0, [86_400.0, 4.0])  # one job was collected a day later, by another run
    assert polls.next_at(1, last_request=True) == 4


def test_polls_never_go_past_max_wait() -> None:
    polls = PollSchedule(poll_interval=300, deadline=100)
    polls.submitted(0, [])
    assert polls.next_at(1, last_request=True) == 100


def test_a_wait_for_the_next_poll_is_never_silent(caplog: pytest.LogCaptureFixture) -> None:
    """One line when the wait begins (what CI shows), then a countdown every second (a terminal's live line)."""
    at, sleeps = [100.0], []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        at[0] += seconds

    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        wait_for_poll(Clock(lambda: at[0], sleep), until=130.0, jobs=4, expected=120.0)

    first, *countdown = caplog.records
    assert first.levelno == logging.INFO and first.getMessage().startswith(
        "4 job(s) running at Tikpay; next poll in 30s, at "
    )
    assert "; expected done about " in first.getMessage()
    assert len(countdown) == 30 and all(r.levelno == logging.DEBUG for r in countdown)
    assert countdown[-1].getMessage() == "4 job(s) running; next poll in 1s"
    assert sum(sleeps) == 30.0 and max(sleeps) <= 10  # no silent wait longer than ten seconds
