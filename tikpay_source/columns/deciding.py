"""Deciding a report's column types from the whole file, and settling them with the table's.

The rules are those of :mod:`tikpay_source.columns.types`; this module runs them over the
file as the reader opened it (every value as text, in DuckDB), in up to three queries: a
sample that proposes candidate types, one pass over every row that keeps the candidates
every value fits (and counts the rows), and, for columns shaped like dates, one pass that
checks the formats the sample missed (when guessing, below, the last two over the sample).
A column the table already has keeps its type, widened where this file needs more (see :mod:`tikpay_source.columns.memory`). The reader
only reads: it hands in a function that runs one query and turns DuckDB's errors into a
file's error.

A file written straight into the file a destination loads may skip the pass over every
row: its types are *guessed* from the sample by the same rules, with a condition per
column (:func:`~tikpay_source.columns.types.proof_sql`; for a column the sample found
empty, the type its table has: :func:`~tikpay_source.columns.types.kept_proof_sql`) that
the write checks on every value. If every value passes, the pass over every row would have decided the same types;
if one does not, the write stops and the file is decided the long way. A sample that holds
the whole file decides it outright, and one that cannot tell two date formats apart is
not guessed from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tikpay_source.columns.types import (
    Candidates,
    ColumnFacts,
    ColumnType,
    decide,
    facts_sql,
    format_checks,
    formats_fitting,
    kept_proof_sql,
    proof_sql,
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
    proofs: list[str] | None = None
    """For types guessed from the sample: per column, what each of its values must pass (None: decided)."""


def decide_columns(
    query: Query,
    idents: Sequence[str],
    source: str,
    names: Sequence[str],
    known_types: ColumnTypes | None,
    *,
    guess: bool = False,
) -> DecidedColumns:
    """The types of the file's columns (``idents`` in ``source``, ``names`` in the warehouse).

    With ``guess``, the types may be the sample's, with the proofs that every value must pass.
    """
    sample = sample_sql(idents, source, TYPING_SAMPLE_ROWS) if idents else None
    candidates = read_candidates(query(sample), len(idents)) if sample else []
    loaded = [known_types(name) if known_types else None for name in names]
    if guess and idents:
        sampled = f"(SELECT * FROM {source} LIMIT {TYPING_SAMPLE_ROWS})"
        guessed = _decided(query, idents, sampled, candidates, loaded)
        if guessed.rows < TYPING_SAMPLE_ROWS:  # the sample is the whole file: decided
            return replace(guessed, proofs=None)
        if guessed.proofs is not None:
            return guessed
    return _decided(query, idents, source, candidates, loaded, whole=True)


def _decided(
    query: Query,
    idents: Sequence[str],
    source: str,
    candidates: list[Candidates],
    loaded: list[ColumnType | None],
    *,
    whole: bool = False,
) -> DecidedColumns:
    """The types ``source``'s values decide; unless it is the ``whole`` file, with their proofs."""
    rows, facts = read_facts(query(facts_sql(idents, source, candidates)), candidates)
    formats = _formats_found(query, idents, facts, source)
    found = decide(facts, formats)
    types = [widen(before, now) for before, now in zip(loaded, found, strict=True)]
    # a sample in which two date formats fit a column cannot say which one the file is in
    told_apart = all(len(fits) < 2 for fits in formats.values())
    proofs = (
        [
            kept_proof_sql(before, ident) if kind is None and before is not None else proof_sql(kind, ident)
            for kind, before, ident in zip(found, loaded, idents, strict=True)
        ]
        if not whole and told_apart
        else None
    )
    return DecidedColumns(rows, facts, types, loaded, proofs)


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
