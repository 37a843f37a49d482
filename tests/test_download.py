"""download_report against the sandbox's object-storage host: streamed, checked whole, credential-free."""

from __future__ import annotations

import errno
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tikpay_source.api.client import TikpayClient
from tikpay_source.api.download import download_report
from tikpay_source.api.ledger import RequestLedger
from tikpay_source.api.models import ApiJob
from tikpay_source.config import Credentials
from tikpay_source.errors import LinkExpired, ReportFileError, ScratchUnusable
from tikpay_source.files.readers import open_report
from tikpay_source.planning.budget import RequestBudget
from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Fault, Sandbox
from tikpay_source.settings import DOWNLOAD_CHUNK_BYTES

DAY = ("2025-03-01T00:00:00", "2025-03-02T00:00:00")


@pytest.fixture
def api_client(sandbox: Sandbox, tmp_path: Path) -> Iterator[TikpayClient]:
    """A TikpayClient on the default sandbox, ledger in its own directory."""
    client = _client(sandbox, tmp_path / "ledger")
    yield client
    client.close()


def _client(sb: Sandbox, ledger_dir: Path) -> TikpayClient:
    return TikpayClient(
        sb.base_url,
        sb.token_url,
        Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_API_KEY),
        RequestBudget(RequestLedger.local(ledger_dir, DEMO_API_KEY)),
        sleep=lambda _seconds: None,
    )


def complete_job(client: TikpayClient, report_type: str = "TAPS", file_type: str = "csv") -> ApiJob:
    """Submit a one-day job and list until it is COMPLETE; return the listed job with its link."""
    job_id = client.submit(report_type, *DAY, file_type)
    for _ in range(3):
        job = next(j for j in client.list_jobs() if j.job_id == job_id)
        if job.status == "COMPLETE":
            assert job.download_url
            return job
    raise AssertionError(f"job {job_id} did not complete")


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    """An empty directory to download into."""
    directory = tmp_path / "downloads"
    directory.mkdir()
    return directory


@pytest.mark.parametrize("file_type", ["csv", "xml"])
def test_download_equals_the_served_file(
    sandbox: Sandbox, api_client: TikpayClient, downloads: Path, file_type: str
) -> None:
    """The downloaded file is byte-identical to the report the sandbox serves, named with the suffix."""
    job = complete_job(api_client, file_type=file_type)
    assert job.download_url is not None
    path = download_report(job.download_url, downloads, suffix=file_type)
    assert path.parent == downloads
    assert path.suffix == f".{file_type}"
    expected = sandbox.report_file(job.job_id).read_bytes()
    assert len(expected) > 1000
    assert path.read_bytes() == expected
    assert list(downloads.iterdir()) == [path]


def test_download_sends_no_credentials(sandbox: Sandbox, api_client: TikpayClient, downloads: Path) -> None:
    """The request to the download host carries neither the bearer token nor the API key."""
    job = complete_job(api_client)
    assert job.download_url is not None
    download_report(job.download_url, downloads, suffix="csv")
    (request,) = sandbox.download_requests
    assert request["status"] == 200
    assert "authorization" not in request["headers"]
    assert "x-api-key" not in request["headers"]
    assert DEMO_API_KEY not in str(request["headers"])
    # the API host did see both on its own requests, so the check above is meaningful
    api_list_call = next(r for r in sandbox.api_requests if r["path"].startswith("/v1/report-jobs-list"))
    assert api_list_call["headers"]["x-api-key"] == DEMO_API_KEY


def test_dropped_connection_is_report_file_error_and_leaves_no_file(
    sandbox: Sandbox, api_client: TikpayClient, downloads: Path
) -> None:
    """A body cut short of Content-Length raises ReportFileError and removes the partial file."""
    job = complete_job(api_client)
    assert job.download_url is not None
    sandbox.inject(Fault("drop", endpoint="download", after_bytes=500))
    with pytest.raises(ReportFileError) as caught:
        download_report(job.download_url, downloads, suffix="csv")
    assert "signature" not in str(caught.value)
    assert list(downloads.iterdir()) == []
    # the link still works once the fault is spent: the failure was the connection, not the link
    assert download_report(job.download_url, downloads, suffix="csv").read_bytes() == (
        sandbox.report_file(job.job_id).read_bytes()
    )


def test_server_error_is_report_file_error_and_leaves_no_file(
    sandbox: Sandbox, api_client: TikpayClient, downloads: Path
) -> None:
    """A 500 from the download host is a ReportFileError (not LinkExpired), with nothing left behind."""
    job = complete_job(api_client)
    assert job.download_url is not None
    sandbox.inject(Fault("status", endpoint="download", status=500))
    with pytest.raises(ReportFileError, match="HTTP 500"):
        download_report(job.download_url, downloads, suffix="csv")
    assert list(downloads.iterdir()) == []


def test_expired_link_is_link_expired_without_the_signature(
    sandbox: Sandbox, api_client: TikpayClient, downloads: Path
) -> None:
    """A retired link raises LinkExpired whose message holds only the host, never the signed query."""
    job = complete_job(api_client)
    assert job.download_url is not None
    sandbox.inject(Fault("expire_links"))
    with pytest.raises(LinkExpired) as caught:
        download_report(job.download_url, downloads, suffix="csv")
    message = str(caught.value)
    parts = urlsplit(job.download_url)
    assert parts.query not in message
    assert "signature" not in message
    assert parts.path not in message
    assert parts.netloc in message
    assert list(downloads.iterdir()) == []
    assert [r["status"] for r in sandbox.download_requests] == [403]
    # the next list signs a fresh link that works
    fresh = next(j for j in api_client.list_jobs() if j.job_id == job.job_id)
    assert fresh.download_url is not None and fresh.download_url != job.download_url
    assert download_report(fresh.download_url, downloads, suffix="csv").stat().st_size > 0


def test_a_link_with_a_user_and_password_is_named_by_its_host_only(
    sandbox: Sandbox, api_client: TikpayClient, downloads: Path
) -> None:
    """Credentials written into a link (``user:password@host``) are never part of a message."""
    job = complete_job(api_client)
    assert job.download_url is not None
    parts = urlsplit(job.download_url)
    with_login = parts._replace(netloc=f"reader:pa55w0rd@{parts.netloc}").geturl()
    sandbox.inject(Fault("expire_links"))
    with pytest.raises(LinkExpired) as caught:
        download_report(with_login, downloads, suffix="csv")
    message = str(caught.value)
    assert f"the download link at {parts.hostname}:{parts.port} was refused" in message
    assert "pa55w0rd" not in message and "reader" not in message


def test_progress_reports_increasing_counts_to_the_file_size(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, downloads: Path
) -> None:
    """The progress callback sees strictly increasing byte counts, the announced total, and the full size."""
    sb = make_sandbox(rows_per_hour={"TAPS": 500}, complete_after_list_calls=0)
    client = _client(sb, tmp_path / "ledger")
    try:
        job = complete_job(client)
    finally:
        client.close()
    assert job.download_url is not None
    size = sb.report_file(job.job_id).stat().st_size
    assert size > DOWNLOAD_CHUNK_BYTES  # so the download takes more than one chunk
    calls: list[tuple[int, int | None]] = []
    path = download_report(
        job.download_url, downloads, suffix="csv", progress=lambda n, t: calls.append((n, t))
    )
    counts = [n for n, _ in calls]
    assert len(counts) >= 2
    assert counts == sorted(set(counts))  # strictly increasing
    assert counts[-1] == size == path.stat().st_size
    assert {t for _, t in calls} == {size}


def test_a_legal_file_without_a_final_line_break_is_kept_whole(
    sandbox: Sandbox, api_client: TikpayClient, downloads: Path
) -> None:
    """RFC 4180 allows no line break after the last row; Content-Length proves the file whole."""
    job = complete_job(api_client)
    sandbox.inject(Fault("content", body=b"id,name\n1,Ada\n2,Grace"))
    path = download_report(job.download_url or "", downloads, suffix="csv")
    assert path.read_bytes() == b"id,name\n1,Ada\n2,Grace"
    report = open_report(path, "csv", "Australia/Sydney")
    try:
        rows = [row for batch in report.batches() for row in batch.to_pylist()]
        assert report.rows == 2 and [row["name"] for row in rows] == ["Ada", "Grace"]
    finally:
        report.close()


@pytest.fixture
def unframed_server() -> Iterator[Callable[[bytes], str]]:
    """A loopback server answering HTTP/1.0 with no Content-Length: the body ends when the connection does."""
    servers: list[socketserver.TCPServer] = []

    def serve(body: bytes) -> str:
        class Answer(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.rfile.readline()
                self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/csv\r\n\r\n" + body)

        server = socketserver.TCPServer(("127.0.0.1", 0), Answer)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/report.csv"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_an_unframed_download_must_end_with_a_line_break(
    unframed_server: Callable[[bytes], str], downloads: Path
) -> None:
    """Without a length or chunks only the last byte can tell a cut: a body ending inside a line is refused."""
    with pytest.raises(ReportFileError, match="looks cut short"):
        download_report(unframed_server(b"id,name\n1,Ada\n2,Gr"), downloads, suffix="csv")
    assert list(downloads.iterdir()) == []
    whole = download_report(unframed_server(b"id,name\n1,Ada\n"), downloads, suffix="csv")
    assert whole.read_bytes() == b"id,name\n1,Ada\n"


def test_a_fault_of_the_connector_is_not_taken_for_a_bad_file(
    sandbox: Sandbox, api_client: TikpayClient, downloads: Path, tmp_path: Path
) -> None:
    """A bug goes up as itself, and an unusable scratch folder stops the run: neither resubmits the window."""
    job = complete_job(api_client)

    def broken_progress(_received: int, _total: int | None) -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        download_report(job.download_url or "", downloads, suffix="csv", progress=broken_progress)
    assert list(downloads.iterdir()) == []

    def full_disk(_received: int, _total: int | None) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ScratchUnusable, match="No space left on device") as refused:
        download_report(job.download_url or "", downloads, suffix="csv", progress=full_disk)
    assert not isinstance(refused.value, ReportFileError) and str(downloads) in str(refused.value)
