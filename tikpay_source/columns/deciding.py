"""Deciding a report's column types from the whole file, and settling them with the table's.

The rules are those of :mod:`tikpay_source.columns.types`; this module runs them over the
file as the reader opened it (every value as text, in DuckDB), in up to three queries: a
sample that proposes candidate types, one pass over every row that keeps the candidates
every value fits (and counts the rows), and, for columns shaped like dates, one pass that
checks the formats the sample missed. A column the table already has keeps its type,
widened where this file needs more (see :mod:`tikpay_source.columns.memory`). The reader
only reads: it hands in a function that runs one query and turns DuckDB's errors into a
file's error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tikpay_source.columns.types import (
    ColumnFacts,
    ColumnType,
    decide,
    facts_sql,
    format_checks,
    formats_fitting,
    read_candidates,
    read_facts,
    sample_sql,
    widen,
)
from tikpay_source.settings import TYPING_SAMPLE_ROWS

ColumnTypes = Callable[[str], "ColumnType | None"]
"""The type a column (by its warehouse name) already has in the table, if any."""

Query = Callable[[str], Sequence[Any]]
"""Runs one SQL query over the file and returns its single row."""


@dataclass(frozen=True)
class DecidedColumns:
    """What the file's values say of each column, and the type each is read as."""

    rows: int
    facts: list[ColumnFacts]
    types: list[ColumnType | None]
    """The type each column is read as (None: no value, and no type known)."""
    loaded: list[ColumnType | None]
    """The type each column had in the table before this file, if any."""


def decide_columns(
    query: Query, idents: Sequence[str], source: str, names: Sequence[str], known_types: ColumnTypes | None
) -> DecidedColumns:
    """The types of the file's columns (``idents`` in ``source``, ``names`` in the warehouse)."""
    sample = sample_sql(idents, source, TYPING_SAMPLE_ROWS) if idents else None
    candidates = read_candidates(query(sample), len(idents)) if sample else []
    rows, facts = read_facts(query(facts_sql(idents, source, candidates)), candidates)
    found = decide(facts, _formats_found(query, idents, facts, source))
    loaded = [known_types(name) if known_types else None for name in names]
    types = [widen(before, now) for before, now in zip(loaded, found, strict=True)]
    return DecidedColumns(rows, facts, types, loaded)


def _formats_found(
    query: Query, idents: Sequence[str], facts: list[ColumnFacts], source: str
) -> dict[int, list[str]]:
    """The formats every value of each date-shaped column is in; a last pass checks those the sample missed."""
    checks = format_checks(idents, facts)
    later: dict[int, list[str]] = {}
    if checks:
        row = query(f"SELECT {', '.join(c for _, _, c in checks)} FROM {source}")
        for (index, fmt, _), fits in zip(checks, row, strict=True):
            if fits:
                later.setdefault(index, []).append(fmt)
    found = {i: formats_fitting(fact, later.get(i, [])) for i, fact in enumerate(facts) if fact.values}
    return {i: fits for i, fits in found.items() if fits}
