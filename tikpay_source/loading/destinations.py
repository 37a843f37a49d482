"""What each destination does with a report, in one place: one entry per destination.

A destination profile says, for one run, everything the connector decides by destination:

- the **file it loads as it is** (Parquet into DuckDB and MotherDuck, CSV into PostgreSQL),
  which DuckDB writes straight from the checked report (see :mod:`tikpay_source.loading.exports`);
  anywhere else the rows go as Arrow batches;
- whether it can be **asked whether a table already holds a window's rows**, so a new
  window is appended instead of replaced (see :mod:`tikpay_source.loading.writers`);
- how a loaded column **widens** (the SQL dialect of its ``ALTER TABLE``), or that its
  files keep their own types, or that it cannot (see :mod:`tikpay_source.columns.widening`);
- whether the BI **views** are made there (see :mod:`tikpay_source.loading.views`);
- whether its tables are **Delta** tables (see :mod:`tikpay_source.loading.lake`);
- the file format ``pipeline.run`` is told to write (Parquet on ``filesystem``);
- whether its data is a local database file the summary can name (DuckDB);
- how it holds the **shared request ledger** and run lock of ``ledger = "destination"``: rows
  of a table (SQL) or objects created exclusively (files); see
  :mod:`tikpay_source.loading.shared_ledger`.

Profiles are keyed on dlt's destination *type*, so a destination given a name of its own
(``dlt.destinations.postgres(destination_name="warehouse")``) keeps its profile. Adding a
destination is one entry in :data:`PROFILES`; one that is not listed gets :data:`ELSEWHERE`,
which is always correct: Arrow batches, every window replaced, columns widened by hand.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import Any

import dlt
from dlt.common.destination.configuration import CsvFormatConfiguration
from dlt.common.exceptions import DltException

from tikpay_source.errors import ConfigError
from tikpay_source.settings import DEFAULT_TABLE_FORMAT, DELTA_EXTRA

PARQUET = "parquet"
CSV = "csv"
DELTA = "delta"
DUCKDB_SQL = "duckdb"
POSTGRES_SQL = "postgres"
SQL = "sql"
OBJECTS = "objects"


@dataclass(frozen=True)
class ReadyFile:
    """The file a destination loads as it is: its format and, for CSV, its delimiter."""

    file_format: str
    delimiter: str = ","


@dataclass(frozen=True)
class DestinationProfile:
    """How the connector loads into one destination (see the module's docstring for each field)."""

    name: str
    ready_file: ReadyFile | None = None
    asks_presence: bool = False
    widening_sql: str | None = None
    """The dialect of ``ALTER TABLE … TYPE … USING`` there; None where the connector does not widen."""
    files_keep_types: bool = False
    """Each file keeps the column types it was written with: nothing is ever widened."""
    views: bool = False
    lake: bool = False
    """Tables are files (dlt's ``filesystem``): Delta tables with ``table_format`` delta."""
    delta: bool = False
    loader_file_format: str | None = None
    local_file: bool = False
    """The data is a database file on this machine (its credentials' ``database``), not a server."""
    shared_ledger: str | None = None
    """How the ledger of ``ledger = "destination"`` is kept there: :data:`SQL` rows, :data:`OBJECTS`, or not at all."""

    @property
    def table_file(self) -> ReadyFile | None:
        """The file DuckDB writes of a report for its table (None: Arrow batches, or a Delta merge)."""
        return None if self.delta else self.ready_file

    def describe(self) -> str:
        """The destination as a message names it."""
        return "Delta tables" if self.delta else self.name


_DUCKDB = DestinationProfile(
    "duckdb",
    ReadyFile(PARQUET),
    asks_presence=True,
    widening_sql=DUCKDB_SQL,
    views=True,
    local_file=True,
    shared_ledger=SQL,
)
PROFILES: dict[str, DestinationProfile] = {
    "dlt.destinations.duckdb": _DUCKDB,
    "dlt.destinations.motherduck": replace(_DUCKDB, name="motherduck", local_file=False),
    "dlt.destinations.postgres": DestinationProfile(
        "postgres",
        ReadyFile(CSV),
        asks_presence=True,
        widening_sql=POSTGRES_SQL,
        views=True,
        shared_ledger=SQL,
    ),
    "dlt.destinations.filesystem": DestinationProfile(
        "filesystem", files_keep_types=True, lake=True, loader_file_format=PARQUET, shared_ledger=OBJECTS
    ),
}
ELSEWHERE = DestinationProfile("elsewhere")
"""Any destination not listed, and a resource iterated outside a pipeline (nothing is loaded)."""


def profile_of(destination: Any | None, table_format: str | None = None) -> DestinationProfile:
    """The profile of a dlt destination, with its CSV settings and a run's ``table_format`` applied.

    Without ``table_format`` (a question about views, say) no table is taken for Delta.
    Raises ConfigError (one line naming the extra) when Delta tables are due but deltalake
    is missing, so a run fails before it spends a request.
    """
    if destination is None:
        return ELSEWHERE
    listed = PROFILES.get(destination.destination_type)
    if listed is None:
        return replace(ELSEWHERE, name=destination.destination_name)
    profile = replace(listed, name=destination.destination_name)
    if profile.lake and table_format == DELTA:
        _require_deltalake()
        profile = replace(profile, delta=True, files_keep_types=False)
    if profile.ready_file is not None and profile.ready_file.file_format == CSV:
        profile = replace(profile, ready_file=_csv_ready_file(destination))
    return profile


def running_pipeline() -> Any | None:
    """The pipeline whose resources are running; None when they are iterated outside one."""
    try:
        return dlt.current.pipeline()
    except DltException:  # iterated outside a pipeline: nothing is loaded
        return None


def current_profile(table_format: str = DEFAULT_TABLE_FORMAT) -> DestinationProfile:
    """The profile of the running pipeline's destination: known only while the resources run."""
    pipeline = running_pipeline()
    return profile_of(pipeline.destination if pipeline else None, table_format)


def _csv_ready_file(destination: Any) -> ReadyFile | None:
    """The CSV file to write for this destination's COPY, or None where its CSV settings differ.

    A PostgreSQL destination configured for CSV without a header or in another encoding
    keeps the Arrow batches.
    """
    configured = destination.configuration(None, accept_partial=True)
    csv_format: CsvFormatConfiguration = getattr(configured, "csv_format", None) or CsvFormatConfiguration()
    if not csv_format.include_header or csv_format.encoding.replace("-", "").lower() != "utf8":
        return None
    return ReadyFile(CSV, csv_format.delimiter)


def _require_deltalake() -> None:
    try:
        importlib.import_module("deltalake")
    except ImportError:
        raise ConfigError(
            f"table_format 'delta' needs the deltalake package: pip install -e {DELTA_EXTRA} "
            "(or table_format 'parquet' for plain, append-only files)"
        ) from None
