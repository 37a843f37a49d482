"""The typing rules: which warehouse type a report column gets from its text, and how types widen.

A column gets a type other than text only when every value in it maps to that type and
back to the very same text (see the README's typing table). The decision is one
vectorised DuckDB aggregate over the whole file read as text: per column, whether every
value matches each candidate (plain integer, decimal of one scale, boolean of one case,
one date or timestamp format that round-trips). Nothing here looks at a value in Python.

A column keeps its type across files and *widens* when a later file does not fit it:
integers and decimals of one scale widen to more digits, anything else widens to text.
Each widening keeps every loaded value's text exactly (see :mod:`tikpay_source.widening`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tikpay_source.settings import (
    BIGINT_MAX_DIGITS,
    DATE_FORMATS,
    DECIMAL_PRECISIONS,
    FORMAT_HINT,
    TIMESTAMP_FORMATS,
)

TEXT = "text"
BIGINT = "bigint"
DECIMAL = "decimal"
BOOL = "bool"
DATE = "date"
TIMESTAMP = "timestamp"
LEGACY_DOUBLE = "double"  # only columns loaded by earlier versions; never chosen for a file

# How booleans are written in a column: the one case style of all its values, kept so
# that a boolean column widened to text gives back exactly the file's words.
BOOL_STYLES: dict[str, tuple[str, str]] = {
    "lower": ("true", "false"),
    "upper": ("TRUE", "FALSE"),
    "title": ("True", "False"),
}

_INTEGER = r"-?(0|[1-9][0-9]*)"
_DECIMAL = r"-?(0|[1-9][0-9]*)\.[0-9]+"
_NEGATIVE_ZERO = r"-0(\.0+)?"  # a number type would drop the sign


@dataclass(frozen=True)
class ColumnType:
    """A column's warehouse type, with what it takes to give back each value's exact text.

    ``precision``/``scale`` for decimals; ``fmt`` is the strftime format of a date or
    timestamp column, or the case style of a boolean one.
    """

    kind: str
    precision: int | None = None
    scale: int | None = None
    fmt: str | None = None

    def read_sql(self, column: str) -> str:
        """The DuckDB expression turning the file's text ``column`` into this type."""
        if self.kind == BIGINT:
            return f"CAST({column} AS BIGINT)"
        if self.kind in (DECIMAL, LEGACY_DOUBLE):
            target = f"DECIMAL({self.precision}, {self.scale})" if self.kind == DECIMAL else "DOUBLE"
            return f"CAST({column} AS {target})"
        if self.kind == BOOL:
            return f"CAST({column} AS BOOLEAN)"
        if self.kind == DATE:
            return f"CAST(strptime({column}, '{self.fmt}') AS DATE)"
        if self.kind == TIMESTAMP:
            return f"strptime({column}, '{self.fmt}')"
        return column

    def hints(self) -> dict[str, Any]:
        """The dlt column schema entries of this type (the format as a custom ``x-`` hint)."""
        hints: dict[str, Any] = {"data_type": self.kind}
        if self.kind == DECIMAL:
            hints |= {"precision": self.precision, "scale": self.scale}
        if self.fmt:
            hints[FORMAT_HINT] = self.fmt
        return hints

    def describe(self) -> str:
        if self.kind == DECIMAL:
            return f"decimal({self.precision},{self.scale})"
        return self.kind


TEXT_TYPE = ColumnType(TEXT)


def from_schema(column: dict[str, Any]) -> ColumnType | None:
    """The type of a column as dlt's schema records it (defaults for columns of earlier versions)."""
    kind = column.get("data_type")
    if kind is None:
        return None
    fmt = column.get(FORMAT_HINT)
    if kind == DECIMAL:
        return ColumnType(DECIMAL, column.get("precision") or 38, column.get("scale") or 0)
    if kind == BOOL:
        return ColumnType(BOOL, fmt=fmt or "lower")
    if kind == DATE:
        return ColumnType(DATE, fmt=fmt or DATE_FORMATS[0])
    if kind == TIMESTAMP:
        return ColumnType(TIMESTAMP, fmt=fmt or TIMESTAMP_FORMATS[0])
    if kind in (BIGINT, TEXT, LEGACY_DOUBLE):
        return ColumnType(kind)
    return TEXT_TYPE


def widen(loaded: ColumnType | None, found: ColumnType | None) -> ColumnType | None:
    """The narrowest type holding every value of both: the column's type after this file.

    Integers and decimals of the same scale widen to the precision both need; every
    other difference (another scale, format or kind) widens to text, the one type that
    keeps every value's text. A bigint counts as a decimal of scale 0.
    """
    if loaded is None or found is None or loaded == found:
        return loaded or found
    numbers = (BIGINT, DECIMAL)
    if loaded.kind in numbers and found.kind in numbers and (loaded.scale or 0) == (found.scale or 0):
        return _decimal(max(_digits(loaded), _digits(found)), loaded.scale or 0)
    return TEXT_TYPE


def _digits(number: ColumnType) -> int:
    return BIGINT_MAX_DIGITS if number.kind == BIGINT else number.precision or 0


def _decimal(digits: int, scale: int) -> ColumnType:
    """A decimal with room for ``digits`` digits, in the smallest of the precision steps (else text)."""
    if scale == 0 and digits <= BIGINT_MAX_DIGITS:
        return ColumnType(BIGINT)
    precision = next((p for p in DECIMAL_PRECISIONS if digits <= p), None)
    return ColumnType(DECIMAL, precision, scale) if precision else TEXT_TYPE


# --- deciding a column's type from the file ------------------------------------------------


def _candidates(c: str) -> list[str]:
    """Aggregates over one text column ``c``: counts, number shape, boolean styles, formats."""
    every = "bool_and(coalesce({}, false)) FILTER (WHERE {c} IS NOT NULL)"
    checks = [
        f"regexp_full_match({c}, '{_INTEGER}') AND NOT regexp_full_match({c}, '{_NEGATIVE_ZERO}')",
        f"regexp_full_match({c}, '{_DECIMAL}') AND NOT regexp_full_match({c}, '{_NEGATIVE_ZERO}')",
        *(f"{c} IN ('{t}', '{f}')" for t, f in BOOL_STYLES.values()),
        *(
            f"strftime(try_strptime({c}, '{fmt}'), '{fmt}') = {c}"
            for fmt in (*DATE_FORMATS, *TIMESTAMP_FORMATS)
        ),
    ]
    return [
        f"count({c})",
        f"max(length(ltrim(split_part({c}, '.', 1), '-')))",
        f"max(length(split_part({c}, '.', 2)))",
        f"min(length(split_part({c}, '.', 2)))",
        *(every.format(check, c=c) for check in checks),
    ]


def classification_sql(columns: Sequence[str], source: str) -> str:
    """One query over ``source`` (every column as text) whose single row :func:`classify` reads."""
    exprs = ["count(*)"] + [e for column in columns for e in _candidates(column)]
    return f"SELECT {', '.join(exprs)} FROM {source}"


def classify(row: Sequence[Any], count: int) -> tuple[int, list[tuple[int, ColumnType | None]]]:
    """The row count and, per column, its non-empty values and type (None: no value at all)."""
    width = len(_candidates("c"))
    found = []
    for i in range(count):
        values, int_digits, max_scale, min_scale, *fits = row[1 + i * width : 1 + (i + 1) * width]
        found.append((values, _type_of(values, int_digits, max_scale, min_scale, fits) if values else None))
    return row[0], found


def _type_of(values: int, int_digits: int, max_scale: int, min_scale: int, fits: list[bool]) -> ColumnType:
    integer, decimal, *rest = fits
    styles, formats = rest[: len(BOOL_STYLES)], rest[len(BOOL_STYLES) :]
    if integer:
        return _decimal(int_digits, 0)
    if decimal and min_scale == max_scale:  # one scale: DECIMAL gives every value back as written
        return _decimal(int_digits + max_scale, max_scale)
    style = next((name for name, fit in zip(BOOL_STYLES, styles, strict=True) if fit), None)
    if style:
        return ColumnType(BOOL, fmt=style)
    dates = [fmt for fmt, fit in zip(DATE_FORMATS, formats, strict=False) if fit]
    stamps = [fmt for fmt, fit in zip(TIMESTAMP_FORMATS, formats[len(DATE_FORMATS) :], strict=True) if fit]
    if len(dates) == 1 and not stamps:  # two formats fit (01/02/2025): day or month? text says both
        return ColumnType(DATE, fmt=dates[0])
    if len(stamps) == 1 and not dates:
        return ColumnType(TIMESTAMP, fmt=stamps[0])
    return TEXT_TYPE
