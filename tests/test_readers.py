"""read_report on real sandbox files: exact values, types from the data, zone-aware times, bad files refused."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from tikpay_source.api.client import TikpayClient
from tikpay_source.api.download import download_report
from tikpay_source.api.ledger import RequestLedger
from tikpay_source.api.models import ApiJob
from tikpay_source.columns.types import TEXT_TYPE, ColumnType
from tikpay_source.config import Credentials
from tikpay_source.errors import ReportFileError
from tikpay_source.files import xml_reports, xml_scan
from tikpay_source.files.readers import open_report
from tikpay_source.planning.budget import RequestBudget
from tikpay_source.sandbox import (
    DEMO_API_KEY,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    REPORT_COLUMNS,
    TIME_COLUMN,
    Fault,
    Sandbox,
)
from tikpay_source.settings import BATCH_ROWS, TYPING_SAMPLE_ROWS

DAY = ("2025-03-01T00:00:00", "2025-03-02T00:00:00")
DST_FALL_BACK_DAY = ("2025-04-06T00:00:00", "2025-04-07T00:00:00")  # Australia/Sydney: 25 hours
REPORT_TYPES = ("CUSTOMERS", "PAYMENTS", "TAPS", "TRIPS")

Fetch = Callable[..., tuple[Path, ApiJob]]


@pytest.fixture
def fetch(sandbox: Sandbox, tmp_path: Path) -> Iterator[Fetch]:
    """``fetch(report_type, file_type, window=DAY, fault=None)``: a COMPLETE job's file in tmp_path.

    A download fault (truncate, malformed_row) is injected just before the download, so the
    damaged file is the one the sandbox really serves.
    """
    client = TikpayClient(
        sandbox.base_url,
        sandbox.token_url,
        Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_API_KEY),
        RequestBudget(RequestLedger.local(tmp_path / "ledger", DEMO_API_KEY, limit=1000)),
        sleep=lambda _seconds: None,
    )
    files = tmp_path / "files"
    files.mkdir()

    def _fetch(
        report_type: str, file_type: str, window: tuple[str, str] = DAY, fault: Fault | None = None
    ) -> tuple[Path, ApiJob]:
        job_id = client.submit(report_type, *window, file_type)
        for _ in range(3):
            job = next(j for j in client.list_jobs() if j.job_id == job_id)
            if job.status == "COMPLETE" and job.download_url:
                break
        else:
            raise AssertionError(f"job {job_id} did not complete")
        if fault is not None:
            sandbox.inject(fault)
            return download_report(job.download_url, files, suffix=file_type), job
        target = files / f"{job_id}.{file_type}"
        shutil.copyfile(sandbox.report_file(job_id), target)
        return target, job

    yield _fetch
    client.close()


def read_report(
    path: Path, file_type: str, timezone: str, batch_rows: int = BATCH_ROWS, known_types: Any = None
) -> Iterator[pa.RecordBatch]:
    """The report's batches, the whole file checked before the first (as the connector reads it)."""
    report = open_report(path, file_type, timezone, batch_rows, known_types)
    try:
        yield from report.batches()
    finally:
        report.close()


def read_all(path: Path, file_type: str, timezone: str = "Australia/Sydney", **kwargs: Any) -> pa.Table:
    """Every batch of a report, as one table (an empty table when no batch is yielded)."""
    batches = list(read_report(path, file_type, timezone, **kwargs))
    return pa.Table.from_batches(batches) if batches else pa.table({})


def wall_text(value: datetime) -> str:
    """The naive local wall-clock text of an aware datetime, as the report files write times."""
    return value.replace(tzinfo=None).isoformat()


def as_file_text(value: Any, arrow_type: pa.DataType) -> str:
    """A typed cell turned back into the text the file holds ("" for null)."""
    if value is None:
        return ""
    if pa.types.is_timestamp(arrow_type):
        return wall_text(value)
    if pa.types.is_boolean(arrow_type):
        return "true" if value else "false"
    if pa.types.is_floating(arrow_type):
        return repr(float(value))
    return str(value)


def normalise_float_text(text: str, arrow_type: pa.DataType) -> str:
    """Ground-truth text of a float column in ``repr`` form, so numbers compare exactly, not as text."""
    if text and pa.types.is_floating(arrow_type):
        return repr(float(text))
    return text


# --- values and types -------------------------------------------------------------------


@pytest.mark.parametrize("file_type", ["csv", "xml"])
@pytest.mark.parametrize("report_type", REPORT_TYPES)
def test_every_value_matches_ground_truth(
    sandbox: Sandbox, fetch: Fetch, report_type: str, file_type: str
) -> None:
    """All rows of a one-day file arrive, in file order, each cell equal to the sandbox's ground truth."""
    path, _ = fetch(report_type, file_type)
    truth = sandbox.ground_truth(report_type, *DAY)
    table = read_all(path, file_type)
    assert table.num_rows == len(truth) > 0
    assert table.column_names == list(REPORT_COLUMNS[report_type])
    for name in table.column_names:
        arrow_type = table.schema.field(name).type
        got = [as_file_text(v, arrow_type) for v in table.column(name).to_pylist()]
        want = [normalise_float_text(row[name], arrow_type) for row in truth]
        assert got == want, name


@pytest.mark.parametrize("file_type", ["csv", "xml"])
def test_awkward_text_survives_exactly(sandbox: Sandbox, fetch: Fetch, file_type: str) -> None:
    """Quotes, commas, newlines and non-ASCII text come through unchanged; empty text becomes None."""
    columns = ("full_name", "email", "postal_address", "concession_type", "notes")
    path, _ = fetch("CUSTOMERS", file_type)
    truth = sandbox.ground_truth("CUSTOMERS", *DAY)
    values = [v for row in truth for v in (row[c] for c in columns)]
    # the day really holds every kind of awkward value, so the comparison below means something
    assert any('"' in v for v in values)
    assert any("," in v for v in values)
    assert any("\n" in v for v in values)
    assert any(not v.isascii() for v in values)
    assert any(v == "" for v in values)
    table = read_all(path, file_type)
    for name in columns:
        assert pa.types.is_string(table.schema.field(name).type)
        assert table.column(name).to_pylist() == [row[name] or None for row in truth], name


@pytest.mark.parametrize("file_type", ["csv", "xml"])
def test_payment_references_with_quotes_and_commas(sandbox: Sandbox, fetch: Fetch, file_type: str) -> None:
    """A reference such as 'Top-up "auto", kiosk' and non-ASCII references are read as written."""
    path, _ = fetch("PAYMENTS", file_type)
    truth = sandbox.ground_truth("PAYMENTS", *DAY)
    assert any(row["reference"] == 'Top-up "auto", kiosk' for row in truth)
    assert any(not row["reference"].isascii() for row in truth)
    table = read_all(path, file_type)
    assert table.column("reference").to_pylist() == [row["reference"] or None for row in truth]


@pytest.mark.parametrize("file_type", ["csv", "xml"])
def test_card_ids_keep_leading_zeros_and_numbers_are_numeric(
    sandbox: Sandbox, fetch: Fetch, file_type: str
) -> None:
    """card_id stays text with its leading zeros; ids, fares and distances are numbers; flags are booleans."""
    path, _ = fetch("TRIPS", file_type)
    truth = sandbox.ground_truth("TRIPS", *DAY)
    table = read_all(path, file_type)
    assert pa.types.is_string(table.schema.field("card_id").type)
    cards = table.column("card_id").to_pylist()
    assert cards == [row["card_id"] for row in truth]
    assert all(card.startswith("0") and len(card) == 16 for card in cards)
    for name in ("trip_id", "tap_on_id"):
        assert pa.types.is_integer(table.schema.field(name).type), name
    for name in ("fare_amount", "distance_km"):
        field_type = table.schema.field(name).type
        assert pa.types.is_floating(field_type) or pa.types.is_decimal(field_type), name
    assert pa.types.is_boolean(table.schema.field("concession").type)
    # forgotten tap-offs have no fare: a null number, not a zero or an empty string
    fares = table.column("fare_amount").to_pylist()
    assert None in fares
    assert [f is None for f in fares] == [row["fare_amount"] == "" for row in truth]


@pytest.mark.parametrize("file_type", ["csv", "xml"])
def test_stop_ids_with_a_leading_zero_stay_text(sandbox: Sandbox, fetch: Fetch, file_type: str) -> None:
    """stop_id stays text when one stop id has a leading zero (021210), so no id is altered."""
    path, _ = fetch("TAPS", file_type)
    truth = sandbox.ground_truth("TAPS", *DAY)
    assert any(row["stop_id"].startswith("0") for row in truth)
    table = read_all(path, file_type)
    assert pa.types.is_string(table.schema.field("stop_id").type)
    assert table.column("stop_id").to_pylist() == [row["stop_id"] for row in truth]


# --- time columns -------------------------------------------------------------------------


@pytest.mark.parametrize("file_type", ["csv", "xml"])
@pytest.mark.parametrize("report_type", REPORT_TYPES)
def test_time_columns_are_zone_aware_with_the_file_wall_time(
    sandbox: Sandbox, fetch: Fetch, report_type: str, file_type: str
) -> None:
    """Time columns are timestamps in the job's timezone whose local wall time is the file's text."""
    path, job = fetch(report_type, file_type)
    assert job.timezone == "Australia/Sydney"
    truth = sandbox.ground_truth(report_type, *DAY)
    table = read_all(path, file_type, job.timezone)
    time_columns = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    assert TIME_COLUMN[report_type] in time_columns
    for name in time_columns:
        assert table.schema.field(name).type.tz == job.timezone, name
        got = [v and wall_text(v) for v in table.column(name).to_pylist()]
        assert got == [row[name] or None for row in truth], name


def test_other_timezone_is_applied(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    """A file read for another operator zone gets that zone, and the UTC instant moves accordingly."""
    sb = make_sandbox(complete_after_list_calls=0)
    client = TikpayClient(
        sb.base_url,
        sb.token_url,
        Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_API_KEY),
        RequestBudget(RequestLedger.local(tmp_path / "ledger", DEMO_API_KEY)),
    )
    try:
        job_id = client.submit("PAYMENTS", *DAY, "csv")
        client.list_jobs()
    finally:
        client.close()
    path = sb.report_file(job_id)
    sydney = read_all(path, "csv", "Australia/Sydney").column("payment_time")
    auckland = read_all(path, "csv", "Pacific/Auckland").column("payment_time")
    assert auckland.type.tz == "Pacific/Auckland"
    assert [wall_text(v) for v in auckland.to_pylist()] == [wall_text(v) for v in sydney.to_pylist()]
    # same wall text, two hours earlier as an instant (AEDT +11 vs NZDT +13 on 2025-03-01)
    first_sydney, first_auckland = sydney.to_pylist()[0], auckland.to_pylist()[0]
    assert (first_sydney - first_auckland).total_seconds() == 2 * 3600


@pytest.mark.parametrize("file_type", ["csv", "xml"])
def test_dst_fall_back_day_reads_without_error(sandbox: Sandbox, fetch: Fetch, file_type: str) -> None:
    """On the 25-hour day (repeated 02:00-03:00) every row is read and keeps its wall time."""
    path, _ = fetch("TAPS", file_type, window=DST_FALL_BACK_DAY)
    truth = sandbox.ground_truth("TAPS", *DST_FALL_BACK_DAY)
    repeated = [row for row in truth if row["tap_time"].startswith("2025-04-06T02:")]
    assert len(repeated) > 40  # both passes through the repeated hour are in the file
    table = read_all(path, file_type)
    assert table.num_rows == len(truth)
    times = table.column("tap_time").to_pylist()
    assert [wall_text(v) for v in times] == [row["tap_time"] for row in truth]
    # the ambiguous wall times are read as the earlier instant (+11:00, still daylight time)
    first_repeated = next(v for v in times if wall_text(v).startswith("2025-04-06T02:"))
    assert first_repeated.utcoffset() is not None
    assert first_repeated.utcoffset().total_seconds() == 11 * 3600


def test_a_time_the_spring_forward_skips_is_read_with_the_offset_before_the_change(tmp_path: Path) -> None:
    """02:30 does not exist in Sydney on 2025-10-05; a clock not yet put forward wrote it (+10:00)."""
    walls = ["2025-10-05 01:59:00", "2025-10-05 02:00:00", "2025-10-05 02:30:00", "2025-10-05 03:00:00", ""]
    path = tmp_path / "gap.csv"
    path.write_text("id,at\n" + "".join(f"{i},{wall}\n" for i, wall in enumerate(walls)))
    got = read_all(path, "csv", "Australia/Sydney").column("at").to_pylist()
    sydney = ZoneInfo("Australia/Sydney")
    expected = [datetime.fromisoformat(wall).replace(tzinfo=sydney) for wall in walls[:-1]]  # fold=0
    in_utc = [t.astimezone(timezone.utc) for t in got[:-1]]
    assert in_utc == [t.astimezone(timezone.utc) for t in expected] and got[-1] is None
    assert [t.strftime("%H:%M") for t in in_utc] == ["15:59", "16:00", "16:30", "16:00"]


# --- damaged and unusual files ------------------------------------------------------------


@pytest.mark.parametrize("file_type", ["csv", "xml"])
def test_truncated_file_fails_before_any_batch(sandbox: Sandbox, fetch: Fetch, file_type: str) -> None:
    """A download cut inside a row raises ReportFileError before the first batch is handed out."""
    path, job = fetch("TAPS", file_type, fault=Fault("truncate", endpoint="download"))
    assert path.stat().st_size < sandbox.report_file(job.job_id).stat().st_size
    yielded: list[pa.RecordBatch] = []
    with pytest.raises(ReportFileError):
        yielded.extend(read_report(path, file_type, "Australia/Sydney", batch_rows=10))
    assert yielded == []


@pytest.mark.parametrize("file_type", ["csv", "xml"])
def test_malformed_row_fails_before_any_batch(fetch: Fetch, file_type: str) -> None:
    """A file with one bad row in the middle raises ReportFileError and yields no batch."""
    path, _ = fetch("TAPS", file_type, fault=Fault("malformed_row", endpoint="download"))
    yielded: list[pa.RecordBatch] = []
    with pytest.raises(ReportFileError, match="malformed"):
        yielded.extend(read_report(path, file_type, "Australia/Sydney", batch_rows=10))
    assert yielded == []


def test_xml_with_dtd_entities_is_refused(tmp_path: Path) -> None:
    """An XML report with a DTD (billion laughs) is refused with a message naming DTDs."""
    path = tmp_path / "laughs.xml"
    path.write_text(
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE report [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'
        '<report><record id="1"><name>&lol3;</name></record></report>\n',
        encoding="utf-8",
    )
    with pytest.raises(ReportFileError, match="DTD"):
        list(read_report(path, "xml", "UTC"))


def test_xml_field_first_seen_late_is_kept(tmp_path: Path) -> None:
    """Fields that first appear in later records become columns; no earlier or later value is lost."""
    path = tmp_path / "late.xml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<report type="X">\n'
        '<record id="1"><name>Zoë</name></record>\n'
        '<record id="2"><name>Jack</name></record>\n'
        '<record id="3"><name>Mia</name><note>late, "quoted"</note></record>\n'
        '<record id="4" extra="attr"><name>Wei</name><note/></record>\n'
        "</report>\n",
        encoding="utf-8",
    )
    table = read_all(path, "xml", "UTC")
    assert table.column_names == ["id", "name", "note", "extra"]
    assert table.column("id").to_pylist() == [1, 2, 3, 4]
    assert table.column("name").to_pylist() == ["Zoë", "Jack", "Mia", "Wei"]
    assert table.column("note").to_pylist() == [None, None, 'late, "quoted"', None]
    assert table.column("extra").to_pylist() == [None, None, None, "attr"]
    assert [p.name for p in tmp_path.iterdir()] == ["late.xml"]  # the scratch CSV is gone


def test_empty_csv_is_refused(tmp_path: Path) -> None:
    """A zero-byte CSV (not even a header) is a ReportFileError."""
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(ReportFileError, match="empty"):
        list(read_report(path, "csv", "UTC"))


def test_header_only_csv_has_zero_rows(tmp_path: Path) -> None:
    """A CSV with a header and no rows reads without error and yields no rows."""
    path = tmp_path / "header.csv"
    path.write_bytes(b"tap_id,tap_time,card_id\r\n")
    batches = list(read_report(path, "csv", "UTC"))
    assert sum(b.num_rows for b in batches) == 0


@pytest.mark.parametrize("file_type", ["csv", "xml"])
def test_batch_rows_bounds_batch_size(sandbox: Sandbox, fetch: Fetch, file_type: str) -> None:
    """batch_rows=100 on a ~1000-row file gives batches of at most 100 rows, all rows included."""
    path, _ = fetch("TAPS", file_type)
    expected = sandbox.count_rows("TAPS", *DAY)
    assert expected >= 900
    sizes = [b.num_rows for b in read_report(path, file_type, "Australia/Sydney", batch_rows=100)]
    assert max(sizes) <= 100
    assert sum(sizes) == expected
    assert len(sizes) >= expected // 100


# --- the fast XML scanner and the full parser agree -------------------------------------


def both_conversions(
    path: Path, tmp_path: Path
) -> tuple[int | None, list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows the fast scanner converted or None, its rows read back, the full parser's rows read back)."""
    fast_csv, full_csv = tmp_path / "fast.csv", tmp_path / "full.csv"
    scanned = xml_scan.scan_canonical_xml(path, fast_csv)
    xml_reports.parse_xml_to_csv(path, full_csv)

    def rows(csv_path: Path) -> list[dict[str, Any]]:
        return [row for b in read_report(csv_path, "csv", "UTC", 1000) for row in b.to_pylist()]

    return scanned, rows(fast_csv) if scanned is not None else [], rows(full_csv)


@pytest.mark.parametrize("report_type", REPORT_TYPES)
def test_fast_xml_scanner_reads_the_api_layout_like_the_full_parser(
    fetch: Fetch, tmp_path: Path, report_type: str
) -> None:
    """Sandbox XML takes the fast path, and its rows are exactly the full parser's, types included."""
    path, _ = fetch(report_type, "xml")
    scanned, fast, full = both_conversions(path, tmp_path)
    assert scanned == len(full) > 0
    assert fast == full


@pytest.fixture(params=[1, 3], ids=["one-part", "three-parts"])
def parts(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Convert XML in one part, or cut even a small file into three parts converted side by side."""
    monkeypatch.setattr(xml_scan, "_PARTS", request.param)
    monkeypatch.setattr(xml_scan, "_MIN_PART_BYTES", 64)
    monkeypatch.setattr(xml_scan, "_SCAN_BLOCK_BYTES", 16)  # so the head read stops at the first record
    return request.param


def test_a_large_xml_file_is_cut_into_parts_at_record_ends(tmp_path: Path, parts: int) -> None:
    """The cuts fall just after record end tags, so every part holds whole records only."""
    path = tmp_path / "parts.xml"
    records = "".join(f'<record id="{i}"><name>Zoë {i}</name></record >\n' for i in range(30))
    path.write_text(f'<?xml version="1.0"?>\n<report>\n{records}</report>\n', encoding="utf-8")
    cuts = xml_scan._part_cuts(path, b"record", head_end=40)
    assert len(cuts) == parts + 1 and cuts[0] == 0 and cuts[-1] == path.stat().st_size
    body = path.read_bytes()
    assert all(body[:cut].endswith(b"</record >") for cut in cuts[1:-1])
    scanned, fast, full = both_conversions(path, tmp_path)
    assert scanned == 30 and fast == full


def test_parts_are_converted_without_forking_a_process_that_runs_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork copies the locks other threads hold (DuckDB's, dlt's, a sandbox's) but not the threads:
    a forked child that needs one waits forever. The parts' workers are started fresh, never forked."""
    monkeypatch.setattr(xml_scan, "_PARTS", 3)  # even this small file in three parts: two workers
    monkeypatch.setattr(xml_scan, "_MIN_PART_BYTES", 64)
    monkeypatch.setattr(xml_scan, "_SCAN_BLOCK_BYTES", 16)
    forks: list[int] = []
    os.register_at_fork(before=lambda: forks.append(os.getpid()))
    path = tmp_path / "parts.xml"
    records = "".join(f'<record id="{i}"><name>N {i}</name></record>\n' for i in range(30))
    path.write_text(f'<?xml version="1.0"?>\n<report>\n{records}</report>\n', encoding="utf-8")
    busy = threading.Event()
    worker = threading.Thread(target=busy.wait)  # another thread is running while the parts convert
    worker.start()
    try:
        assert xml_scan.scan_canonical_xml(path, tmp_path / "out.csv") == 30
    finally:
        busy.set()
        worker.join()
    assert forks == []
    assert (tmp_path / "out.csv").read_text().splitlines()[1:4] == ['"0","N 0"', '"1","N 1"', '"2","N 2"']


def test_fast_xml_scanner_across_block_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: int
) -> None:
    """Tiny blocks (and parts) cut records, entities and CRLF pairs anywhere; values still match the full parser."""
    monkeypatch.setattr(xml_scan, "_SCAN_BLOCK_BYTES", 7)
    path = tmp_path / "crlf.xml"
    records = "".join(
        f'<record id="{i}"><name>Zoë &amp; &lt;Jo&gt; &quot;{i}&quot;</name>'
        f"<note>line one\r\nline two, &apos;{i}&apos;</note><empty></empty><gone/>\r\n</record>\r\n"
        for i in range(40)
    )
    path.write_bytes(f'<?xml version="1.0" encoding="UTF-8"?>\r\n<report>\r\n{records}</report>\r\n'.encode())
    scanned, fast, full = both_conversions(path, tmp_path)
    assert scanned == 40
    assert fast == full
    assert fast[3]["name"] == 'Zoë & <Jo> "3"'
    assert fast[3]["note"] == "line one\nline two, '3'"
    assert fast[3]["empty"] is None and fast[3]["gone"] is None


@pytest.mark.parametrize(
    "second_record",
    [
        '<record id="2"><!-- a comment --><name>Jack</name></record>',
        '<record id="2"><name><![CDATA[<Jack>]]></name></record>',
        '<record id="2"><name>J&#97;ck</name></record>',
        "<record id='2'><name>Jack</name></record>",
        '<record id="2"><name lang="en">Jack</name></record>',
        '<record id="2" extra="x"><name>Jack</name></record>',
        '<record id="2"\tflag="a\tb"><name>Jack</name></record>',
    ],
)
def test_unusual_xml_goes_to_the_full_parser(tmp_path: Path, second_record: str, parts: int) -> None:
    """Anything outside the API's layout is left to the full parser, whose result is the answer."""
    path = tmp_path / "unusual.xml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<report>\n<record id="1"><name>Zoë</name></record>\n'
        f"{second_record}\n</report>\n",
        encoding="utf-8",
    )
    assert xml_scan.scan_canonical_xml(path, tmp_path / "fast.csv") is None
    table = read_all(path, "xml", "UTC")
    assert table.num_rows == 2
    assert table.column("id").to_pylist() == [1, 2]


@pytest.mark.parametrize(
    ("second_record", "problem"),
    [
        ('<record id="2"><name>Jack</name><name>Jill</name></record>', "'name' appears more than once"),
        ('<record id="2"><name>Ja<b>ck</b></name></record>', "'name' has elements inside it"),
        ('<record id="2"><id>3</id><name>Jack</name></record>', "'id' appears more than once"),
    ],
)
def test_xml_records_one_row_cannot_hold_are_refused_not_cut_down(
    tmp_path: Path, second_record: str, problem: str, parts: int
) -> None:
    """A repeated field, a nested element, or an attribute and an element of one name would lose a value."""
    path = tmp_path / "deep.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n<report>\n<record id="1"><name>Zoë</name></record>\n{second_record}\n</report>\n',
        encoding="utf-8",
    )
    with pytest.raises(ReportFileError, match=f"record 2 cannot be read as one row: its field {problem}"):
        list(read_report(path, "xml", "UTC"))


@pytest.mark.parametrize("forbidden", ["\uffff", "\ufffe", "]]>"])
def test_xml_non_characters_are_left_to_the_full_parser(tmp_path: Path, parts: int, forbidden: str) -> None:
    """U+FFFE and U+FFFF are not XML characters, nor is ]]> XML text: the scanner must not accept them."""
    path = tmp_path / "ffff.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<report>\n<record id="1"><name>Zoë</name></record>\n'
        f'<record id="2"><name>Ja{forbidden}ck</name></record>\n</report>\n',
        encoding="utf-8",
    )
    assert xml_scan.scan_canonical_xml(path, tmp_path / "fast.csv") is None
    with pytest.raises(ReportFileError, match="malformed"):
        list(read_report(path, "xml", "UTC"))


def test_xml_text_near_the_forbidden_sequences_is_scanned_like_the_parser_reads_it(tmp_path: Path) -> None:
    """Their first bytes alone (``]``, fullwidth letters and U+FFFD start with 0xEF) are ordinary text."""
    path = tmp_path / "near.xml"
    names = ["Platform ]1[", "a]]b", "Ｔｏｗｎ Ｈａｌｌ", "\ufffd", "&amp;lt;not a tag&amp;gt;"]
    records = "".join(f'<record id="{i}"><name>{name}</name></record>\n' for i, name in enumerate(names))
    path.write_text(f'<?xml version="1.0"?>\n<report>\n{records}</report>\n', encoding="utf-8")
    scanned, fast, full = both_conversions(path, tmp_path)
    assert scanned == len(names) and fast == full
    assert [row["name"] for row in fast] == [*names[:4], "&lt;not a tag&gt;"]


def test_xml_without_the_root_end_is_refused(tmp_path: Path, parts: int) -> None:
    """A file that stops after a whole record (no root end tag) is not accepted by the fast path either."""
    path = tmp_path / "cut.xml"
    records = "".join(f'<record id="{i}"><name>Zoë</name></record>\n' for i in range(20))
    path.write_text(f'<?xml version="1.0"?>\n<report>\n{records}')
    assert xml_scan.scan_canonical_xml(path, tmp_path / "fast.csv") is None
    with pytest.raises(ReportFileError, match="malformed"):
        list(read_report(path, "xml", "UTC"))


def _late_surprises_csv(path: Path, rows: int = 30_000) -> None:
    """Columns whose first 25,000 rows say one type and whose last rows say another.

    DuckDB's quick sniff reads only the first rows, so each column below is typed wrongly
    by it; only the whole-file types are right.
    """
    lines = ["row,code,late_number,card"]
    for i in range(rows):
        late = i >= rows - 5
        code = "A1" if late else str(i)  # numbers, then text: text
        late_number = str(i) if i >= 25_000 else ""  # empty, then numbers: numbers
        card = f"00{i}" if late else str(i + 1)  # numbers, then leading zeros: text
        lines.append(f"{i},{code},{late_number},{card}")
    path.write_text("\n".join(lines) + "\n")


def test_types_come_from_every_row_not_the_first_ones(tmp_path: Path) -> None:
    """Late text keeps a column text, late numbers make it a number, late leading zeros survive."""
    path = tmp_path / "late.csv"
    _late_surprises_csv(path)
    table = pa.Table.from_batches(list(read_report(path, "csv", "UTC")))
    assert table.num_rows == 30_000
    assert table.schema.field("code").type == pa.string()
    assert table.schema.field("late_number").type == pa.int64()
    assert table.schema.field("card").type == pa.string()
    assert table.column("code").to_pylist()[-1] == "A1"
    assert table.column("card").to_pylist()[-1] == "0029999"
    assert table.column("late_number").to_pylist()[-1] == 29_999


BIGINT = ColumnType("bigint")


@pytest.mark.parametrize(
    ("value", "loaded_as", "read_as", "values"),
    [
        ("1.5", BIGINT, TEXT_TYPE, ["1.5", "3"]),  # another scale: text keeps both as written
        ("0042", BIGINT, TEXT_TYPE, ["0042", "3"]),  # leading zeros stay text
        ("abc", BIGINT, TEXT_TYPE, ["abc", "3"]),
        ("99999999999999999999", BIGINT, ColumnType("decimal", 38, 0), [Decimal("99999999999999999999"), 3]),
        ("7", BIGINT, BIGINT, [7, 3]),
        ("", BIGINT, BIGINT, [None, 3]),
        ("1.5", TEXT_TYPE, TEXT_TYPE, ["1.5", "3"]),
        ("maybe", ColumnType("bool", fmt="lower"), TEXT_TYPE, ["maybe", "3"]),
    ],
)
def test_a_kept_column_widens_to_what_the_file_needs_and_keeps_every_value(
    tmp_path: Path, value: str, loaded_as: ColumnType, read_as: ColumnType, values: list[object]
) -> None:
    """A loaded column's type is kept where the file fits it, and widened (never narrowed) where not."""
    path = tmp_path / "kept.csv"
    path.write_text(f"id,amount\n1,{value}\n2,3\n")
    report = open_report(path, "csv", "UTC", known_types={"amount": loaded_as}.get)
    try:
        assert report.columns[1].kind == read_as and report.columns[1].loaded == loaded_as
        (batch,) = report.batches()
        assert [None if v is None else v for v in batch.column(1).to_pylist()] == [
            Decimal(v) if isinstance(v, int) and read_as.kind == "decimal" else v for v in values
        ]
    finally:
        report.close()


def test_a_value_after_the_typing_sample_that_breaks_a_type_keeps_the_column_text(tmp_path: Path) -> None:
    """The sample of the first rows only rules types out; every row still decides the column."""
    rows = TYPING_SAMPLE_ROWS + 1
    columns = {
        "late_word": ["7"] * (rows - 1) + ["seven"],  # a number until the last row
        "late_flag": ["true"] * (rows - 1) + ["yes"],
        "late_date": ["2025-03-01"] * (rows - 1) + ["2025-02-30"],  # not a real day
        "early_word": ["seven"] + ["7"] * (rows - 1),
        "late_number": [""] * (rows - 1) + ["8"],  # no value in the sample: every type stays possible
        "late_day": [""] * (rows - 1) + ["2025-03-01"],  # checked by a last pass, as the sample had none
        "other_format": ["2025-03-01"] * (rows - 2) + ["1999/01/01", "9999/12/31"],  # least and greatest
        "number": [str(i) for i in range(rows)],
    }
    path = tmp_path / "late.csv"
    lines = [",".join(columns), *(",".join(v[i] for v in columns.values()) for i in range(rows))]
    path.write_text("\r\n".join(lines) + "\r\n")

    report = open_report(path, "csv", "UTC")
    try:
        kinds = {column.name: column.kind.kind if column.kind else None for column in report.columns}
    finally:
        report.close()

    assert kinds == {
        "late_word": "text",
        "late_flag": "text",
        "late_date": "text",
        "early_word": "text",
        "late_number": "bigint",
        "late_day": "date",
        "other_format": "text",
        "number": "bigint",
    }


def test_a_utf8_byte_order_mark_before_the_header_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    """Issue 22, item 6: a BOM is legal before a CSV header; the first column is ``id``, not ``_id``."""
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfid,amount\n1,2.50\n2,3.00\n")
    report = open_report(path, "csv", "Australia/Sydney", known_types=lambda name: None, discard=False)
    try:
        assert [column.name for column in report.columns] == ["id", "amount"]
        rows = [batch.to_pydict() for batch in report.batches()]
        assert [value for batch in rows for value in batch["id"]] == [1, 2]
    finally:
        report.close()


def test_an_xml_report_with_a_byte_order_mark_is_scanned_fast_and_named_right(tmp_path: Path) -> None:
    """The XML half of the same: the scanner takes the BOM'd file (no fallback to the parser), names intact."""
    path = tmp_path / "bom.xml"
    path.write_bytes(
        b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>\n<report>\n'
        b"<record><id>1</id><name>Ada</name></record>\n<record><id>2</id><name>Grace</name></record>\n</report>\n"
    )
    assert xml_scan.scan_canonical_xml(path, tmp_path / "scanned.csv") == 2
    assert (tmp_path / "scanned.csv").read_bytes() == b'id,name\n"1","Ada"\n"2","Grace"\n'
    report = open_report(path, "xml", "Australia/Sydney")
    try:
        assert [column.name for column in report.columns] == ["id", "name"] and report.rows == 2
    finally:
        report.close()
