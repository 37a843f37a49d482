"""Why a report file could not be read, in one line that never quotes the file.

DuckDB's CSV errors quote the offending row ("Original Line: ..."), which may be a
customer's postal address spanning several lines. Instead of trimming that text out
(and missing the day it changes shape), the message is rebuilt from what is known to be
safe: the line number and the kind of problem, matched against DuckDB's wording.
"""

from __future__ import annotations

import re

import duckdb

LINE_TOO_LONG = "(line too long)"
_LINE = re.compile(r"CSV Error on Line: (\d+)")
_FIELDS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")
_REASONS: tuple[tuple[str, str], ...] = (
    ("unterminated quote", "a quoted field is not closed, or a quote stands inside an unquoted field"),
    ("maximum line size", f"a line is longer than the reader's limit {LINE_TOO_LONG}"),
    ("unicode", "it is not valid UTF-8"),
    ("encoding", "it is not valid UTF-8"),
)


def file_problem(exc: BaseException) -> str:
    """``the report file is malformed: line 3: too many fields (expected 2, found 3)``, say."""
    if isinstance(exc, duckdb.OutOfMemoryException):  # not the file's fault: say so
        return "reading the report file ran out of memory"
    text = str(exc)
    if not isinstance(exc, duckdb.Error):
        return f"reading the report file failed: {type(exc).__name__}"
    line = _LINE.search(text)
    where = f"line {line[1]}: " if line else ""
    return f"the report file is malformed: {where}{_reason(text)}"


def _reason(text: str) -> str:
    fields = _FIELDS.search(text)
    if fields:
        expected, found = int(fields[1]), int(fields[2])
        many = "too many" if found > expected else "too few"
        return f"{many} fields (expected {expected}, found {found})"
    lowered = text.lower()
    return next((reason for key, reason in _REASONS if key in lowered), "it cannot be read as CSV (RFC 4180)")
