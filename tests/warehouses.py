"""Where an end-to-end test loads, and how it reads back what landed there.

The same test runs into a DuckDB file, a schema of a real PostgreSQL server, and dlt's
``filesystem`` destination (Delta tables by default) in a local folder and on an S3 API
server on loopback. Each warehouse answers the tests' SQL (DuckDB's dialect, as the tests
were written for it) where the data lives: DuckDB and PostgreSQL run it on their own
engine, the lake's tables are read through Arrow and queried by DuckDB.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import dlt
import duckdb
import fsspec
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.json as pajson
import pyarrow.parquet as pq

from tikpay_source.settings import DATASET_NAME, JOBS_TABLE

KINDS: tuple[str, ...] = ("duckdb", "postgres", "filesystem", "s3")
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
DELTA_LOG = "_delta_log"


class FilesystemWarehouse(Warehouse):
    """dlt's ``filesystem`` destination in a local folder: Delta tables, or plain Parquet files.

    Read the way a lakehouse tool would: a Delta table through ``deltalake``'s Arrow dataset
    (its log says which Parquet files are live; globbing them would count removed ones),
    plain files and dlt's JSON-lines bookkeeping file by file, all queried with DuckDB.
    """

    kind = "filesystem"
    loader_file_format = "parquet"

    def __init__(self, bucket: Path) -> None:
        self.bucket = bucket

    @property
    def bucket_url(self) -> str:
        return self.bucket.as_uri()

    @property
    def folder(self) -> str:
        """The dataset's folder, as the file system below names it."""
        return f"{self.bucket}/{self.dataset}"

    def destination(self) -> Any:
        return dlt.destinations.filesystem(self.bucket_url)

    def filesystem(self) -> Any:
        """An fsspec file system over the bucket."""
        return fsspec.filesystem("file")

    def storage_options(self) -> dict[str, str]:
        """``deltalake``'s options for the bucket (none for a local folder)."""
        return {}

    def table_uri(self, table: str) -> str:
        return f"{self.bucket_url}/{self.dataset}/{table}"

    def is_delta(self, table: str) -> bool:
        return bool(self.filesystem().exists(f"{self.folder}/{table}/{DELTA_LOG}"))

    def delta_table(self, table: str) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(self.table_uri(table), storage_options=self.storage_options())

    def files(self, table: str) -> list[str]:
        """The data files of a plain table (dlt keeps its own state tables as JSON lines)."""
        fs = self.filesystem()
        folder = f"{self.folder}/{table}"
        if not fs.isdir(folder):
            return []
        return sorted(f for f in fs.ls(folder, detail=False) if f.endswith((".parquet", ".jsonl")))

    def tables(self) -> list[str]:
        fs = self.filesystem()
        if not fs.isdir(self.folder):
            return []
        return sorted(
            p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(self.folder, detail=False) if fs.isdir(p)
        )

    def table_exists(self, table: str) -> bool:
        return self.is_delta(table) or bool(self.files(table))

    def arrow(self, table: str) -> Any:
        """The table as Arrow data (a Delta table's live rows; every file of a plain table)."""
        if self.is_delta(table):
            return self.delta_table(table).to_pyarrow_dataset()
        files, fs = self.files(table), self.filesystem()
        if files[0].endswith(".parquet"):
            schema = pa.unify_schemas([pq.read_schema(fs.open(f)) for f in files])
            return pads.dataset(files, filesystem=fs, schema=schema, format="parquet")
        return pa.concat_tables([read_jsonl(fs.cat_file(f)) for f in files], promote_options="permissive")

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect() as con:
            for table in self.tables():
                if not self.table_exists(table):
                    continue
                name = f"{table}_history" if table == JOBS_TABLE and not self.is_delta(table) else table
                con.register(name, self.arrow(table))
                if name != table:
                    con.execute(f"CREATE VIEW {JOBS_TABLE} AS " + LATEST_JOB_ROWS.format(history=name))
            return con.execute(sql).fetchall()


def read_jsonl(data: bytes) -> pa.Table:
    """dlt's JSON-lines files (gzipped unless configured otherwise) as an Arrow table."""
    return pajson.read_json(io.BytesIO(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data))


@dataclass(frozen=True)
class S3Server:
    """An S3 API on loopback (moto's server) and a bucket in it, for the ``s3`` warehouses."""

    endpoint_url: str
    bucket: str
    key: str = field(default="testing", repr=False)
    secret: str = field(default="testing", repr=False)
    region: str = "us-east-1"


class S3Warehouse(FilesystemWarehouse):
    """The ``filesystem`` destination on an S3 API server: a prefix of its own in the shared bucket."""

    kind = "s3"

    def __init__(self, server: S3Server, key: Path) -> None:
        self.server = server
        self.prefix = "tikpay-" + hashlib.sha1(str(key).encode()).hexdigest()[:12]

    @property
    def bucket_url(self) -> str:
        return f"s3://{self.server.bucket}/{self.prefix}"

    @property
    def folder(self) -> str:
        return f"{self.server.bucket}/{self.prefix}/{self.dataset}"

    def destination(self) -> Any:
        credentials = {
            "aws_access_key_id": self.server.key,
            "aws_secret_access_key": self.server.secret,
            "endpoint_url": self.server.endpoint_url,
            "region_name": self.server.region,
        }
        return dlt.destinations.filesystem(self.bucket_url, credentials=credentials)

    def filesystem(self) -> Any:
        return fsspec.filesystem(
            "s3",
            key=self.server.key,
            secret=self.server.secret,
            endpoint_url=self.server.endpoint_url,
            client_kwargs={"region_name": self.server.region},
            use_listings_cache=False,
        )

    def storage_options(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.server.key,
            "AWS_SECRET_ACCESS_KEY": self.server.secret,
            "AWS_ENDPOINT_URL": self.server.endpoint_url,
            "AWS_REGION": self.server.region,
            "AWS_ALLOW_HTTP": "true",
        }


def make_warehouse(kind: str, where: Path, service: Any = None) -> Warehouse:
    """A fresh location of ``kind`` keyed by the directory ``where`` (so two directories never share one).

    ``service`` is the server the kind needs: the PostgreSQL DSN, or the :class:`S3Server`.
    """
    if kind == "duckdb":
        where.mkdir(parents=True, exist_ok=True)  # DuckDB creates the file, not its folder
        return DuckDBWarehouse(where / "tikpay.duckdb")
    if kind == "postgres":
        if not service:
            raise ValueError("a postgres warehouse needs the postgres_dsn fixture")
        return PostgresWarehouse(service, where)
    if kind == "filesystem":
        return FilesystemWarehouse(where / "files")
    if kind == "s3":
        if not isinstance(service, S3Server):
            raise ValueError("an s3 warehouse needs the s3_server fixture")
        return S3Warehouse(service, where)
    raise ValueError(f"unknown warehouse kind {kind!r}; one of {KINDS}")
