"""Where an end-to-end test loads, and how it reads back what landed there.

The same test runs into a DuckDB file, a schema of a real PostgreSQL server, and a folder
of Parquet files written by dlt's ``filesystem`` destination. Each warehouse answers the
tests' SQL (DuckDB's dialect, as the tests were written for it) where the data lives:
DuckDB and PostgreSQL run it on their own engine, the files are read by DuckDB.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import dlt
import duckdb

from tikpay_source.settings import DATASET_NAME, JOBS_TABLE

KINDS: tuple[str, ...] = ("duckdb", "postgres", "filesystem")
# the PostgreSQL server the tests (and the benchmark's smoke test) load into
POSTGRES_DSN_VARIABLE = "TIKPAY_TEST_POSTGRES"
DUCKDB_WINDOW_TEXT = "strftime({column}, '%Y-%m-%dT%H:%M:%S')"


class Warehouse(ABC):
    """One destination location, private to the test (or shared on purpose by two 'machines')."""

    kind: str
    dataset: str = DATASET_NAME
    # dlt writes arrow batches as Parquet anyway; this makes the job rows and state Parquet too
    loader_file_format: str | None = None

    @abstractmethod
    def destination(self) -> Any:
        """The dlt destination object pointing at this location."""

    @abstractmethod
    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a DuckDB-dialect query over the dataset's tables, unqualified."""

    @abstractmethod
    def table_exists(self, table: str) -> bool: ...

    def window_text(self, column: str) -> str:
        """SQL for a naive timestamp as the API's ``YYYY-MM-DDTHH:MM:SS`` text."""
        return DUCKDB_WINDOW_TEXT.format(column=column)


class DuckDBWarehouse(Warehouse):
    kind = "duckdb"

    def __init__(self, path: Path) -> None:
        self.path = path

    def destination(self) -> Any:
        return dlt.destinations.duckdb(str(self.path))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            con.execute(f"SET search_path = '{self.dataset}'")
            return con.execute(sql).fetchall()

    def table_exists(self, table: str) -> bool:
        """Whether the table is there; a file without the dataset's schema yet has none."""
        if not self.path.exists():
            return False
        sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
        with duckdb.connect(str(self.path), read_only=True) as con:
            ((count,),) = con.execute(sql, [self.dataset, table]).fetchall()
        return count > 0


class PostgresWarehouse(Warehouse):
    """A schema of its own on a shared server; dropped by the ``postgres_dsn`` fixture at the end."""

    kind = "postgres"
    created: ClassVar[set[str]] = set()  # every schema a test may have created, for the session's cleanup

    def __init__(self, dsn: str, key: Path) -> None:
        self.dsn = dsn
        # short, valid and unique per test directory, so concurrent tests never share tables or state
        self.dataset = "tikpay_" + hashlib.sha1(str(key).encode()).hexdigest()[:12]
        PostgresWarehouse.created.add(self.dataset)

    def destination(self) -> Any:
        return dlt.destinations.postgres(self.dsn)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg2

        with psycopg2.connect(self.dsn) as con, con.cursor() as cur:
            cur.execute(f"SET search_path TO {self.dataset}")
            cur.execute(self._postgres_sql(sql))
            rows = cur.fetchall()
        con.close()
        return rows

    def table_exists(self, table: str) -> bool:
        sql = f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{self.dataset}' AND table_name = '{table}'"
        return self.query(sql)[0][0] > 0

    def window_text(self, column: str) -> str:
        return f"""to_char({column}, 'YYYY-MM-DD"T"HH24:MI:SS')"""

    def _postgres_sql(self, sql: str) -> str:
        """The two DuckDB idioms the tests use, spelled out: ``* EXCLUDE (cols)`` and ``ORDER BY ALL``."""
        star = re.search(r"\*\s+EXCLUDE\s*\(([^)]*)\)\s+FROM\s+(\w+)", sql, re.IGNORECASE)
        if star is None:
            if re.search(r"ORDER\s+BY\s+ALL", sql, re.IGNORECASE):
                raise NotImplementedError(f"ORDER BY ALL without * EXCLUDE: {sql}")
            return sql
        excluded = {c.strip() for c in star.group(1).split(",")}
        table = star.group(2)
        columns = [
            name
            for (name,) in self.query(
                "SELECT column_name FROM information_schema.columns "
                f"WHERE table_schema = '{self.dataset}' AND table_name = '{table}' ORDER BY ordinal_position"
            )
            if name not in excluded
        ]
        sql = sql[: star.start()] + ", ".join(columns) + f" FROM {table}" + sql[star.end() :]
        positions = ", ".join(str(i + 1) for i in range(len(columns)))
        return re.sub(r"ORDER\s+BY\s+ALL", f"ORDER BY {positions}", sql, flags=re.IGNORECASE)


# dlt falls back from merge to append on plain files, so report_jobs there is a history of
# each job's rows; its current row is the latest one, which is what merge keeps elsewhere
LATEST_JOB_ROWS = (
    "SELECT * EXCLUDE (_rank) FROM (SELECT *, row_number() OVER "
    "(PARTITION BY job_id ORDER BY updated_at DESC, _dlt_load_id DESC) AS _rank FROM {history}) "
    "WHERE _rank = 1"
)


class FilesystemWarehouse(Warehouse):
    """Parquet files under ``bucket/dataset/table/``, read with DuckDB the way a lakehouse tool would."""

    kind = "filesystem"
    loader_file_format = "parquet"

    def __init__(self, bucket: Path) -> None:
        self.bucket = bucket

    @property
    def folder(self) -> Path:
        return self.bucket / self.dataset

    def destination(self) -> Any:
        return dlt.destinations.filesystem(self.bucket.as_uri())

    def files(self, table: str) -> list[Path]:
        """The data files of one table (dlt keeps its own state tables as JSON lines)."""
        folder = self.folder / table
        return (
            sorted(p for p in folder.glob("*") if p.suffix in (".parquet", ".jsonl"))
            if folder.is_dir()
            else []
        )

    def table_exists(self, table: str) -> bool:
        return bool(self.files(table))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect() as con:
            for folder in sorted(self.folder.iterdir()) if self.folder.is_dir() else []:
                files = self.files(folder.name)
                if not files:
                    continue
                reader = "read_parquet" if files[0].suffix == ".parquet" else "read_json_auto"
                source = f"{reader}([{', '.join(repr(str(f)) for f in files)}], union_by_name = true)"
                if folder.name == JOBS_TABLE:
                    con.execute(f"CREATE VIEW {JOBS_TABLE}_history AS SELECT * FROM {source}")
                    con.execute(
                        f"CREATE VIEW {JOBS_TABLE} AS "
                        + LATEST_JOB_ROWS.format(history=f"{JOBS_TABLE}_history")
                    )
                else:
                    con.execute(f'CREATE VIEW "{folder.name}" AS SELECT * FROM {source}')
            return con.execute(sql).fetchall()


def make_warehouse(kind: str, where: Path, postgres_dsn: str | None = None) -> Warehouse:
    """A fresh location of ``kind`` keyed by the directory ``where`` (so two directories never share one)."""
    if kind == "duckdb":
        where.mkdir(parents=True, exist_ok=True)  # DuckDB creates the file, not its folder
        return DuckDBWarehouse(where / "tikpay.duckdb")
    if kind == "postgres":
        if not postgres_dsn:
            raise ValueError("a postgres warehouse needs the postgres_dsn fixture")
        return PostgresWarehouse(postgres_dsn, where)
    if kind == "filesystem":
        return FilesystemWarehouse(where / "files")
    raise ValueError(f"unknown warehouse kind {kind!r}; one of {KINDS}")
