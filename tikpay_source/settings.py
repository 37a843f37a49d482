"""Constants of the Tikpay Data API and the connector's defaults, in one place."""

from __future__ import annotations

REPORT_TYPES: tuple[str, ...] = ("CUSTOMERS", "PAYMENTS", "TAPS", "TRIPS")
FILE_TYPES: tuple[str, ...] = ("csv", "xml")

DEFAULT_ENVIRONMENT = "prod-au1"
BASE_URL_TEMPLATE = "https://data-api.{environment}.tikpay.me/v1"
TOKEN_URL_TEMPLATE = "https://auth.data-api.{environment}.tikpay.me/oauth2/token"
TOKEN_SCOPE = "data-api.tikpay.me:write"
TOKEN_AUTH_METHODS: tuple[str, ...] = ("basic", "form")
DEFAULT_TOKEN_AUTH = "basic"
GENERATE_REPORT_PATH = "/generate-report"
REPORT_JOBS_LIST_PATH = "/report-jobs-list"

# The API speaks naive local date-times such as 2025-01-01T04:00:00.
LOCAL_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"

DEFAULT_TIMEZONE = "Australia/Sydney"
DEFAULT_FILE_TYPE = "csv"
DEFAULT_WINDOW = "P1D"
# A report type behind by more than a window is fetched in longer jobs, up to a year like the
# public reference's own example; the span of each is sized so that its file stays near
# TARGET_FILE_BYTES, judged from the bytes per day of that type's earlier files.
DEFAULT_MAX_WINDOW = "P366D"
TARGET_FILE_BYTES = 2 * 1024**3
# A report type whose file size is not known yet is first asked for a span this long.
PROBE_SPAN_DAYS = 7
# Reports for the last hour may still be filling up at Tikpay; a window is planned only
# once its end is at least this far in the past.
DEFAULT_LAG = "PT1H"
DEFAULT_POLL_INTERVAL_SECONDS = 60.0
# Job durations (createdAt to completedAt) remembered per report type to time the first poll.
JOB_DURATIONS_KEPT = 5
DEFAULT_MAX_WAIT_SECONDS = 900.0

# Quota: 20 requests per rolling 24 hours per API key, submit and list alike.
QUOTA_LIMIT = 20
QUOTA_WINDOW_SECONDS = 24 * 3600
DEFAULT_MAX_REQUESTS = QUOTA_LIMIT
DEFAULT_MAX_RETRY_WAIT_SECONDS = 60.0

# Bounded retries: transient HTTP faults per call, FAILED/expired jobs per window,
# broken downloads per job (downloads cost no quota).
MAX_TRANSIENT_RETRIES = 2
RETRY_BACKOFF_SECONDS = 1.0
MAX_SUBMIT_ATTEMPTS = 3
MAX_DOWNLOAD_ATTEMPTS = 3
# Job-list answers the connector cannot use (an unknown status, COMPLETE without a link)
# seen for one job before its window is set aside for the run.
MAX_UNUSABLE_ANSWERS = 3
HTTP_TIMEOUT_SECONDS = 60.0
TOKEN_REFRESH_MARGIN_SECONDS = 60.0
DOWNLOAD_CHUNK_BYTES = 1024 * 1024

# Report rows are handed to dlt as Arrow record batches of about this many rows. A batch is
# in memory about three times over (DuckDB's, with local times zoned, with its tags) while dlt
# writes it: at 5 million rows 50,000 peaked about 20 MB lower than 100,000, and cost 5 %.
BATCH_ROWS = 50_000
# DuckDB, reading a report, streams the file, so a larger buffer buys no speed, only memory:
# 128 MB keeps the whole-file type sniffing and the read at the same ceiling for 1 and 5
# million rows.
# The typing pass first reads this many rows: one value there that is not a number (a boolean
# word, a date) rules that type out, so the pass over every row checks only what is left.
TYPING_SAMPLE_ROWS = 20_000
READER_DUCKDB_CONFIG = {"threads": 2, "memory_limit": "128MB"}
# A file read again for its long lines (READER_MAX_LINE_BYTES) needs DuckDB buffers of about
# 16x that size: the rare retry gets this much room instead.
READER_LONG_LINE_DUCKDB_CONFIG = READER_DUCKDB_CONFIG | {"memory_limit": "512MB"}
# DuckDB refuses a CSV line longer than its 2,000,000-byte default; a legal export may hold
# a field of several megabytes. A file that hits the default is read again with this limit
# (only then: DuckDB reads ahead in proportion to it); a longer line fails
# its window with "line too long".
READER_MAX_LINE_BYTES = 8 * 1024 * 1024
# DuckDB's CSV reader reads buffers of 16 times its line limit (32 MB) by default, several
# per thread: buffers of this size held the reader 70 MB lower at 1 million rows, as fast.
READER_BUFFER_BYTES = 8 * 1024 * 1024

# The typing rules (see tikpay_source/columns/types.py and the README's typing table).
# Integers of up to this many digits are BIGINT; longer ones are DECIMAL(p, 0).
BIGINT_MAX_DIGITS = 18
# A decimal column gets the first of these precisions its values fit (DuckDB's 8- and
# 16-byte decimals), so a column rarely has to widen; more digits than the last is text.
DECIMAL_PRECISIONS: tuple[int, ...] = (18, 38)
# The formats a date or timestamp column may have, one per column; each must give back the
# file's text exactly. Timestamps keep at most microseconds (what dlt's warehouses hold).
DATE_FORMATS: tuple[str, ...] = ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y")
TIMESTAMP_FORMATS: tuple[str, ...] = (
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%g",
    "%Y-%m-%d %H:%M:%S.%g",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S.%f",
)
# The custom dlt column hint that keeps a column's text format (date, timestamp, boolean case).
FORMAT_HINT = "x-tikpay-format"

# Progress and notices go to this logger (and its children); the script renders them.
LOGGER_NAME = "tikpay"

PIPELINE_NAME = "tikpay"
DATASET_NAME = "tikpay_data"
SANDBOX_PIPELINE_NAME = "tikpay_sandbox"

JOBS_TABLE = "report_jobs"
RUNS_TABLE = "run_history"  # a row per run, loaded with the run's data
REPORT_TABLES: dict[str, str] = {
    "CUSTOMERS": "customers",
    "PAYMENTS": "payments",
    "TAPS": "taps",
    "TRIPS": "trips",
}
# Columns added to every report row so each row names the job and window it came from.
JOB_ID_COLUMN = "_tikpay_job_id"
WINDOW_START_COLUMN = "_tikpay_window_start"
WINDOW_END_COLUMN = "_tikpay_window_end"
# On Delta tables only: the row's place in its window's file, with the window start its primary key.
ROW_NUMBER_COLUMN = "_tikpay_row"

# Table formats on dlt's filesystem destination: Delta tables replace a reloaded window's rows;
# plain Parquet files can only be appended to.
TABLE_FORMATS: tuple[str, ...] = ("delta", "parquet")
DEFAULT_TABLE_FORMAT = "delta"
DELTA_EXTRA = '".[delta]"'  # the pip extra that brings deltalake

# Exit codes of pipelines/tikpay.py, documented in the README.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_QUOTA_STOP = 3
EXIT_WINDOWS_FAILED = 4
EXIT_LOCKED = 5  # another run of the same pipeline holds its run lock: nothing was done
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: nothing of the run committed

# Where the request ledger lives (issue "Many places, one key"), and the run lock.
LEDGER_LOCAL = "local"
LEDGER_DESTINATION = "destination"
LEDGER_PLACES = (LEDGER_LOCAL, LEDGER_DESTINATION)
DEFAULT_LEDGER = LEDGER_LOCAL
DEFAULT_LOCK_WAIT_SECONDS = 10.0  # a second run of a pipeline waits this long for the first, then exits 5
DEFAULT_LOCK_LEASE_SECONDS = 120.0  # a killed run's lease in the destination frees itself after this
LEDGER_TABLE = "_tikpay_ledger"  # in the dataset (SQL destinations), or a folder of it (filesystem)
