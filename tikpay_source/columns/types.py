"""The typing rules: which warehouse type a report column gets from its text, and how types widen.

A column gets a type other than text only when every value in it maps to that type and
back to the very same text (see the README's typing table). The decision is one
vectorised DuckDB aggregate over the whole file read as text: per column, whether every
value matches each candidate (plain integer, decimal of one scale, boolean of one case,
one date or timestamp format that round-trips). Nothing here looks at a value in Python.

A column keeps its type across files and *widens* when a later file does not fit it:
integers and decimals of one scale widen to more digits, anything else widens to text.
Each widening keeps every loaded value's text exactly (see :mod:`tikpay_source.columns.widening`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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

_INTEGER = "-?(0|[1-9][0-9]*)"  # plain digits, a sign only in front, no leading zero
_NUMBER = _INTEGER + r"(\.[0-9]+)?"


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
#
# Two cheap passes, rarely three. A sample of the first rows rules candidates out: one value
# that is not a plain number, not a boolean word or not shaped like a date settles that for
# the column. The pass over every row then computes, per column, only the string facts its
# remaining candidates are judged by (number patterns, boolean words, the least and greatest
# value), and checks every value against the date or timestamp formats the sample's values
# are shaped like: each must have that shape and be a real date or time in that format.
# Only a column whose least and greatest values over the whole file are shaped like another
# format (or that had no value in the sample) needs a last pass for that check. With every
# field's width fixed by the shape, a value that parses is given back unchanged by the
# format, so no round trip through text is needed.

_DIGITS = "0123456789"
_FORMAT_WIDTHS = {"%Y": 4, "%m": 2, "%d": 2, "%H": 2, "%M": 2, "%S": 2, "%g": 3, "%f": 6}
# Whether every value (NULLs aside) passes a check; NULL for a column without values. Written with
# CASE rather than FILTER: DuckDB evaluates a CASE's condition only as far as it stays true, and at
# 1 million rows this form of the checks took a third less time.
_EVERY = "bool_and(CASE WHEN {c} IS NOT NULL THEN coalesce({}, false) END)"


@dataclass(frozen=True)
class Candidates:
    """The types a column can still have after the sample: no value of it argued against them."""

    number: bool = True
    styles: tuple[bool, ...] = (True,) * len(BOOL_STYLES)
    date: bool = True
    formats: tuple[str, ...] = ()
    """The date formats the sample's values are shaped like: checked in the same pass over every row."""


@dataclass(frozen=True)
class ColumnFacts:
    """What the pass over every row learnt of one column."""

    values: int
    int_digits: int | None
    max_scale: int | None
    min_scale: int | None
    integer: bool | None
    decimal: bool | None
    styles: tuple[bool | None, ...]
    shapes: tuple[str | None, str | None]
    """The least and the greatest value."""
    checked: dict[str, bool] = field(default_factory=dict)
    """Date formats already checked against every value: whether every value is a real date in it."""

    def formats(self) -> list[str]:
        """The date and timestamp formats the column's least and greatest values are shaped like.

        Only a hint of which formats to check: the last pass checks every value.
        """
        return _formats_shaped_like(*self.shapes)


_AS_NINES = str.maketrans(_DIGITS, "9" * len(_DIGITS))


def _formats_shaped_like(low: str | None, high: str | None) -> list[str]:
    low, high = (value.translate(_AS_NINES) if value is not None else None for value in (low, high))
    if low is None or low != high:
        return []
    return [fmt for fmt in (*DATE_FORMATS, *TIMESTAMP_FORMATS) if _pattern(fmt, "9") == low]


def _pattern(fmt: str, digit: str = "[0-9]") -> str:
    """``fmt`` as a regular expression of fixed-width digit fields (or, with ``digit="9"``, its shape)."""
    out, i = [], 0
    while i < len(fmt):
        code = fmt[i : i + 2]
        if code in _FORMAT_WIDTHS:
            out.append(digit * _FORMAT_WIDTHS[code] if digit == "9" else f"{digit}{{{_FORMAT_WIDTHS[code]}}}")
            i += 2
        else:
            out.append("[.]" if fmt[i] == "." and digit != "9" else fmt[i])
            i += 1
    return "".join(out)


def _in_style(c: str, style: str) -> str:
    """Whether a value is one of the two words of a boolean ``style``."""
    true, false = BOOL_STYLES[style]
    return f"{c} IN ('{true}', '{false}')"


def _negative_zero(c: str) -> str:
    """Whether a number is a zero with a sign (a number would drop the sign)."""
    return f"starts_with({c}, '-0') AND ltrim({c}, '-0.') = ''"


def _style_checks(c: str) -> list[str]:
    return [_EVERY.format(_in_style(c, style), c=c) for style in BOOL_STYLES]


def sample_sql(columns: Sequence[str], source: str, rows: int) -> str:
    """The sample's pass over the first ``rows`` rows of ``source``; :func:`read_candidates` reads its row."""
    exprs = [
        e
        for c in columns
        for e in (
            _EVERY.format(f"regexp_full_match({c}, '{_NUMBER}')", c=c),
            *_style_checks(c),
            f"min({c})",
            f"max({c})",
        )
    ]
    return f"SELECT {', '.join(exprs)} FROM (SELECT * FROM {source} LIMIT {rows})"


def read_candidates(row: Sequence[Any], count: int) -> list[Candidates]:
    """Each column's candidates; a column with no value in the sample keeps them all."""
    width = 3 + len(BOOL_STYLES)
    found = []
    for i in range(count):
        number, *styles, low, high = row[i * width : (i + 1) * width]
        formats = tuple(_formats_shaped_like(low, high))
        date = low is None or bool(formats)
        found.append(
            Candidates(number is not False, tuple(fit is not False for fit in styles), date, formats)
        )
    return found


def _aggregates(c: str, can: Candidates) -> list[str]:
    """Per column: values, then what its candidates need: for a number its longest value, the decimal
    point's first and last position, scales and pattern; each boolean style; the least and greatest value.

    Lengths over-count a sign by one digit, which can only make the precision chosen larger.
    """
    number = [
        f"max(length({c}))",
        f"min(strpos({c}, '.'))",
        f"max(strpos({c}, '.'))",
        f"max(length({c}) - strpos({c}, '.'))",
        f"min(length({c}) - strpos({c}, '.'))",
        _EVERY.format(f"regexp_full_match({c}, '{_NUMBER}')", c=c),
        # a negative zero: a number would drop its sign
        f"sum(CASE WHEN {_negative_zero(c)} THEN 1 ELSE 0 END)",
    ]
    styles = [check for check, fit in zip(_style_checks(c), can.styles, strict=True) if fit]
    return [
        f"count({c})",
        *(number if can.number else []),
        *styles,
        *((f"min({c})", f"max({c})") if can.date else ()),
        *(_format_check(c, fmt) for fmt in can.formats),
    ]


def facts_sql(columns: Sequence[str], source: str, candidates: Sequence[Candidates]) -> str:
    """The pass over every row of ``source`` (every column as text); :func:`read_facts` reads its one row."""
    exprs = ["count(*)"] + [
        e for c, can in zip(columns, candidates, strict=True) for e in _aggregates(c, can)
    ]
    return f"SELECT {', '.join(exprs)} FROM {source}"


def read_facts(row: Sequence[Any], candidates: Sequence[Candidates]) -> tuple[int, list[ColumnFacts]]:
    """The row count and each column's facts."""
    cells = iter(row[1:])
    facts = []
    for can in candidates:
        values = next(cells)
        if can.number:
            longest, first_point, last_point, high, low, number, negative_zeros = (
                next(cells) for _ in range(7)
            )
            number = bool(number) and not negative_zeros
        else:
            longest = first_point = last_point = high = low = None
            number = False
        integer = number and last_point == 0
        decimal = number and first_point > 0  # every value has a point (none is an integer)
        digits = (last_point - 1) if decimal else longest
        styles = tuple(bool(next(cells)) if fit else False for fit in can.styles)
        shapes = (next(cells), next(cells)) if can.date else (None, None)
        checked = {fmt: bool(next(cells)) for fmt in can.formats}
        facts.append(ColumnFacts(values, digits, high, low, integer, decimal, styles, shapes, checked))
    return row[0], facts


def format_checks(columns: Sequence[str], facts: Sequence[ColumnFacts]) -> list[tuple[int, str, str]]:
    """The last pass's checks: (column index, format, SQL aggregate), for date-shaped columns only.

    Only formats the pass over every row did not check already (the sample suggested others).
    """
    return [
        (i, fmt, _format_check(column, fmt))
        for i, (column, fact) in enumerate(zip(columns, facts, strict=True))
        if fact.values and not fact.integer and not fact.decimal
        for fmt in fact.formats()
        if fmt not in fact.checked
    ]


def formats_fitting(fact: ColumnFacts, found_later: Sequence[str]) -> list[str]:
    """The formats every value of the column is in: of those its least and greatest values are shaped like."""
    return [fmt for fmt in fact.formats() if fact.checked.get(fmt) or fmt in found_later]


def _format_check(column: str, fmt: str) -> str:
    return _EVERY.format(_in_format(column, fmt), c=column)


def _in_format(column: str, fmt: str) -> str:
    """Whether a value is a real date or time written in ``fmt``, every field at its width."""
    return f"regexp_full_match({column}, '{_pattern(fmt)}') AND try_strptime({column}, '{fmt}') IS NOT NULL"


def proof_sql(found: ColumnType | None, column: str) -> str:
    """What each value of ``column`` must pass for the whole file to be typed ``found``, as the sample was.

    Only for a type the sample decided by these rules: every rule is a condition on each
    value (a pattern, a length, a word) except the precision, a longest value, which a
    bound on each value's length settles; so if every value passes, the pass over every
    row would decide the same type. A column the sample found empty must stay empty, and
    text stays text (more values only rule more types out).
    """
    if found is None:
        return "false"
    if found.kind == TEXT:
        return "true"
    if found.kind in (BIGINT, DECIMAL) and not found.scale:
        digits = BIGINT_MAX_DIGITS if found.kind == BIGINT else found.precision
        return (
            f"regexp_full_match({column}, '{_INTEGER}') AND NOT ({_negative_zero(column)}) "
            f"AND length({column}) <= {digits}"
        )
    if found.kind == DECIMAL:
        number = f"{_INTEGER}[.][0-9]{{{found.scale}}}"
        return (
            f"regexp_full_match({column}, '{number}') AND NOT ({_negative_zero(column)}) "
            f"AND length({column}) - 1 <= {found.precision}"
        )
    if found.kind == BOOL:
        return _in_style(column, found.fmt or "lower")
    if found.kind in (DATE, TIMESTAMP):
        return _in_format(column, found.fmt or "")
    return "false"  # a type no file is decided as (a legacy double): the pass over every row decides


def kept_proof_sql(loaded: ColumnType, column: str) -> str:
    """What each value of a column the sample found empty must pass to keep the type its table has.

    A value the loaded type holds as it is decides a type that widens into it unchanged (the
    pass over every row would widen the loaded type by it to itself). Not for a local
    date-time, whose UTC offsets are worked out from the values' range, nor for a date in a
    format another one shares its shape with (two formats fitting every value decide text).
    """
    if loaded.kind == TIMESTAMP or loaded.kind == LEGACY_DOUBLE:
        return "false"
    if loaded.kind == DATE:
        shape = _pattern(loaded.fmt or "", "9")
        if sum(_pattern(fmt, "9") == shape for fmt in DATE_FORMATS) > 1:
            return "false"
    return proof_sql(loaded, column)


def decide(facts: Sequence[ColumnFacts], formats: dict[int, list[str]]) -> list[ColumnType | None]:
    """Each column's type from the facts and the formats every value was found to be in (None: no value)."""
    return [_type_of(fact, formats.get(i, [])) if fact.values else None for i, fact in enumerate(facts)]


def _type_of(fact: ColumnFacts, formats: list[str]) -> ColumnType:
    if fact.integer:
        return _decimal(fact.int_digits or 0, 0)
    if fact.decimal and fact.min_scale == fact.max_scale:  # one scale: DECIMAL gives every value back
        return _decimal((fact.int_digits or 0) + (fact.max_scale or 0), fact.max_scale or 0)
    style = next((name for name, fit in zip(BOOL_STYLES, fact.styles, strict=True) if fit), None)
    if style:
        return ColumnType(BOOL, fmt=style)
    if len(formats) == 1:  # two formats fit (01/02/2025): day or month? the column alone cannot say
        kind = DATE if formats[0] in DATE_FORMATS else TIMESTAMP
        return ColumnType(kind, fmt=formats[0])
    return TEXT_TYPE
