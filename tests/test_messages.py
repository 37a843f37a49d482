"""The one line (and exit code) a run that ends badly is reported with."""

from __future__ import annotations

from dlt.common.exceptions import DltException

from tikpay_source.messages import error_line, root_cause


def test_the_error_line_names_the_cause_inside_dlt_s_wrappers_not_what_it_interrupted() -> None:
    """An error raised while a generator handled StopIteration is the cause; the StopIteration is not."""
    try:
        try:
            next(iter(()))
        except StopIteration:
            raise ValueError("the real cause")  # noqa: B904 (its __context__ is the StopIteration)
    except ValueError as real:
        try:
            raise DltException("extraction failed") from real
        except DltException as wrapped:
            assert root_cause(wrapped) is real
            assert error_line(wrapped)[0].startswith("ValueError: the real cause")
