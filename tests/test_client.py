"""TikpayClient against the sandbox over real loopback HTTP: auth, counting, retries and quota."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tikpay_source.api.client import TikpayClient
from tikpay_source.api.ledger import RequestLedger
from tikpay_source.api.models import ApiJob, parse_retry_after
from tikpay_source.config import Credentials
from tikpay_source.errors import ApiError, AuthError, QuotaExhausted, RequestNotSent, SubmissionUncertain
from tikpay_source.planning.budget import RequestBudget
from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Fault, Sandbox
from tikpay_source.settings import MAX_TRANSIENT_RETRIES, RETRY_BACKOFF_SECONDS

DAY = ("2025-03-01T00:00:00", "2025-03-02T00:00:00")
ULID_RE = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
TOKEN_PATH = "/oauth2/token"
SUBMIT_PATH = "/v1/generate-report"
LIST_PATH = "/v1/report-jobs-list"

ClientFactory = Callable[..., TikpayClient]


def demo_credentials(secret: str = DEMO_CLIENT_SECRET, api_key: str = DEMO_API_KEY) -> Credentials:
    """The sandbox's demo credentials, optionally with a wrong secret or key."""
    return Credentials(DEMO_CLIENT_ID, secret, api_key)


def requests_to(sb: Sandbox, path: str, method: str | None = None) -> list[dict[str, Any]]:
    """The sandbox's log of API-host requests to ``path`` (query string ignored)."""
    return [
        r
        for r in sb.api_requests
        if r["path"].split("?", 1)[0] == path and (method is None or r["method"] == method)
    ]


@pytest.fixture
def sleeps() -> list[float]:
    """Records the client's back-off and Retry-After waits instead of sleeping."""
    return []


@pytest.fixture
def make_client(tmp_path: Path, sleeps: list[float]) -> Iterator[ClientFactory]:
    """Factory for clients with a ledger under ``tmp_path`` and a recording ``sleep``."""
    made: list[TikpayClient] = []

    def _make(
        sb: Sandbox,
        *,
        credentials: Credentials | None = None,
        ledger: RequestLedger | None = None,
        **kwargs: Any,
    ) -> TikpayClient:
        client = TikpayClient(
            sb.base_url,
            sb.token_url,
            credentials or demo_credentials(),
            RequestBudget(ledger or RequestLedger.local(tmp_path / "ledger", DEMO_API_KEY)),
            sleep=sleeps.append,
            **kwargs,
        )
        made.append(client)
        return client

    yield _make
    for client in made:
        client.close()


# --- token ------------------------------------------------------------------------------


def test_token_sent_as_http_basic(make_sandbox: Callable[..., Sandbox], make_client: ClientFactory) -> None:
    """token_auth="basic" authenticates against a Basic-only token endpoint, via an Authorization header."""
    sb = make_sandbox(token_auth="basic")
    client = make_client(sb, token_auth="basic")
    assert client.list_jobs() == []
    (token_call,) = requests_to(sb, TOKEN_PATH)
    assert token_call["status"] == 200
    assert token_call["headers"]["authorization"].startswith("Basic ")


def test_token_sent_in_form_body(make_sandbox: Callable[..., Sandbox], make_client: ClientFactory) -> None:
    """token_auth="form" authenticates against a form-only token endpoint, without an Authorization header."""
    sb = make_sandbox(token_auth="form")
    client = make_client(sb, token_auth="form")
    assert client.list_jobs() == []
    (token_call,) = requests_to(sb, TOKEN_PATH)
    assert token_call["status"] == 200
    assert "authorization" not in token_call["headers"]


@pytest.mark.parametrize(("server_mode", "client_mode"), [("basic", "form"), ("form", "basic")])
def test_token_mode_mismatch_is_an_auth_error(
    make_sandbox: Callable[..., Sandbox], make_client: ClientFactory, server_mode: str, client_mode: str
) -> None:
    """A token endpoint that wants the other client-auth style gives AuthError, and no API call is made."""
    sb = make_sandbox(token_auth=server_mode)
    client = make_client(sb, token_auth=client_mode)
    with pytest.raises(AuthError, match="token_auth"):
        client.list_jobs()
    assert requests_to(sb, LIST_PATH) == []


def test_wrong_secret_is_auth_error_without_the_secret(sandbox: Sandbox, make_client: ClientFactory) -> None:
    """A refused client secret raises AuthError whose message never repeats the secret."""
    secret = "wrong-secret-5f2c9a"
    client = make_client(sandbox, credentials=demo_credentials(secret=secret))
    with pytest.raises(AuthError) as caught:
        client.list_jobs()
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value)
    assert requests_to(sandbox, LIST_PATH) == []
    assert client.budget.ledger.used() == 0


def test_wrong_api_key_refreshes_once_then_auth_error(sandbox: Sandbox, make_client: ClientFactory) -> None:
    """An API 401 caused by a bad x-api-key is retried once with a new token, then AuthError."""
    key = "not-a-key-7d41"
    client = make_client(sandbox, credentials=demo_credentials(api_key=key))
    with pytest.raises(AuthError) as caught:
        client.list_jobs()
    assert key not in str(caught.value)
    assert len(requests_to(sandbox, TOKEN_PATH)) == 2
    assert [r["status"] for r in requests_to(sandbox, LIST_PATH)] == [401, 401]


# --- submit and list --------------------------------------------------------------------


def test_submit_returns_ulid_and_sandbox_records_one_submission(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    """submit() returns the API's ULID job id after exactly one accepted generate-report."""
    client = make_client(sandbox)
    job_id = client.submit("TRIPS", *DAY, "xml")
    assert ULID_RE.fullmatch(job_id)
    assert sandbox.submissions() == [
        {"reportType": "TRIPS", "fileType": "xml", "startTime": DAY[0], "endTime": DAY[1]}
    ]
    assert [j["jobId"] for j in sandbox.jobs()] == [job_id]


def test_list_returns_api_jobs_with_timezone(
    make_sandbox: Callable[..., Sandbox], make_client: ClientFactory
) -> None:
    """list_jobs() maps each entry to ApiJob, with the operator's timezone and, once complete, a link."""
    sb = make_sandbox(timezone="Pacific/Auckland")
    client = make_client(sb)
    job_id = client.submit("PAYMENTS", *DAY, "csv")
    (first,) = client.list_jobs()
    assert isinstance(first, ApiJob)
    assert (first.job_id, first.status, first.report_type, first.file_type) == (
        job_id,
        "IN_PROGRESS",
        "PAYMENTS",
        "csv",
    )
    assert (first.start_time, first.end_time) == DAY
    assert first.timezone == "Pacific/Auckland"
    assert first.created_at and first.expires_at
    assert first.download_url is None
    (second,) = client.list_jobs()
    assert second.status == "COMPLETE"
    assert second.completed_at is not None
    assert second.download_url and second.download_url.startswith(sb.download_base_url)


def test_every_request_is_in_the_ledger_before_it_is_sent(sandbox: Sandbox, tmp_path: Path) -> None:
    """The ledger writes each request while the sandbox has not yet seen it; counts agree afterwards."""
    seen_at_record: list[int] = []

    def clock() -> float:
        seen_at_record.append(len(requests_to(sandbox, LIST_PATH)) + len(requests_to(sandbox, SUBMIT_PATH)))
        return time.time()

    ledger = RequestLedger.local(tmp_path / "ledger", DEMO_API_KEY, clock=clock)
    client = TikpayClient(sandbox.base_url, sandbox.token_url, demo_credentials(), RequestBudget(ledger))
    try:
        for number, call in enumerate(
            [client.list_jobs, lambda: client.submit("TAPS", *DAY, "csv"), client.list_jobs]
        ):
            seen_at_record.clear()
            call()
            # every clock read during the call (blocked_until, reserve) came before the send
            assert seen_at_record and set(seen_at_record) == {number}
    finally:
        client.close()
    lines = ledger.store.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert ledger.used() == sandbox.quota_used() == client.budget.spent == 3


def test_expired_token_is_refreshed_once(sandbox: Sandbox, make_client: ClientFactory) -> None:
    """A 401 after the token was revoked fetches one new token and the call then succeeds."""
    client = make_client(sandbox)
    client.list_jobs()
    sandbox.inject(Fault("expire_token"))
    assert client.list_jobs() == []
    assert len(requests_to(sandbox, TOKEN_PATH)) == 2
    assert [r["status"] for r in requests_to(sandbox, LIST_PATH)] == [200, 401, 200]
    # the refused attempt was sent with the key, so the ledger counts it (conservative)
    assert client.budget.ledger.used() == 3


def test_bad_request_is_api_error_naming_error_id_and_not_retried(
    sandbox: Sandbox, make_client: ClientFactory, sleeps: list[float]
) -> None:
    """A 400 (start after end) raises ApiError with the errorId, after exactly one POST."""
    client = make_client(sandbox)
    with pytest.raises(ApiError) as caught:
        client.submit("TAPS", DAY[1], DAY[0], "csv")
    assert not isinstance(caught.value, SubmissionUncertain)
    assert re.search(
        r"errorId [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", str(caught.value)
    )
    assert "HTTP 400" in str(caught.value)
    assert [r["status"] for r in requests_to(sandbox, SUBMIT_PATH)] == [400]
    assert sandbox.submissions() == []
    assert sleeps == []


@pytest.mark.parametrize("status", [500, 503])
def test_list_5xx_once_is_retried(
    sandbox: Sandbox, make_client: ClientFactory, sleeps: list[float], status: int
) -> None:
    """A list call meeting one 5xx is retried after a back-off and succeeds; both tries are counted."""
    client = make_client(sandbox)
    sandbox.inject(Fault("status", endpoint="list", status=status))
    assert client.list_jobs() == []
    assert [r["status"] for r in requests_to(sandbox, LIST_PATH)] == [status, 200]
    assert sleeps == [RETRY_BACKOFF_SECONDS]
    assert client.budget.ledger.used() == sandbox.quota_used() == client.budget.spent == 2


def test_list_5xx_forever_gives_up_after_bounded_attempts(
    sandbox: Sandbox, make_client: ClientFactory, sleeps: list[float]
) -> None:
    """A list call that keeps meeting 500 raises ApiError after MAX_TRANSIENT_RETRIES + 1 attempts."""
    client = make_client(sandbox)
    sandbox.inject(Fault("status", endpoint="list", status=500, times=None))
    with pytest.raises(ApiError, match="after 3 attempts"):
        client.list_jobs()
    assert [r["status"] for r in requests_to(sandbox, LIST_PATH)] == [500] * (MAX_TRANSIENT_RETRIES + 1)
    assert len(sleeps) == MAX_TRANSIENT_RETRIES
    assert client.budget.ledger.used() == 3


def test_submit_5xx_is_uncertain_and_never_retried(
    sandbox: Sandbox, make_client: ClientFactory, sleeps: list[float]
) -> None:
    """A submission answered 500 raises SubmissionUncertain after one POST, with no retry."""
    client = make_client(sandbox)
    sandbox.inject(Fault("status", endpoint="submit", status=500))
    with pytest.raises(SubmissionUncertain):
        client.submit("TAPS", *DAY, "csv")
    assert [r["status"] for r in requests_to(sandbox, SUBMIT_PATH, "POST")] == [500]
    assert sleeps == []
    assert client.budget.ledger.used() == 1


def test_an_answer_cut_off_mid_body_is_a_dropped_connection(
    sandbox: Sandbox, make_client: ClientFactory, sleeps: list[float]
) -> None:
    """A submission whose answer is cut is unclear (the job exists); a cut list answer is asked again."""
    client = make_client(sandbox)
    sandbox.inject(Fault("cut_answer", endpoint="submit", after_bytes=5))
    with pytest.raises(SubmissionUncertain, match="ChunkedEncodingError"):
        client.submit("TAPS", *DAY, "csv")
    assert len(sandbox.submissions()) == 1 and sleeps == []  # accepted by the API, never sent twice

    sandbox.inject(Fault("cut_answer", endpoint="list", after_bytes=5))
    (job,) = client.list_jobs()
    assert job.report_type == "TAPS" and sleeps == [RETRY_BACKOFF_SECONDS]
    assert client.budget.spent == client.budget.ledger.used() == 3


def test_slow_submit_is_uncertain_and_not_retried(sandbox: Sandbox, make_client: ClientFactory) -> None:
    """A submission that times out raises SubmissionUncertain; the job did get created, so no retry."""
    client = make_client(sandbox, timeout=0.2)
    sandbox.inject(Fault("slow", endpoint="submit", delay=0.6))
    with pytest.raises(SubmissionUncertain):
        client.submit("TAPS", *DAY, "csv")
    deadline = time.monotonic() + 2.0
    while not sandbox.submissions() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sandbox.submissions()) == 1  # the server did accept it after the client gave up
    assert len(requests_to(sandbox, SUBMIT_PATH, "POST")) == 1
    assert client.budget.spent == client.budget.ledger.used() == 1


def test_token_5xx_is_retried_and_not_counted(
    sandbox: Sandbox, make_client: ClientFactory, sleeps: list[float]
) -> None:
    """A token endpoint 503 is retried with back-off; token calls never enter the request ledger."""
    client = make_client(sandbox)
    sandbox.inject(Fault("status", endpoint="token", status=503))
    assert client.list_jobs() == []
    assert [r["status"] for r in requests_to(sandbox, TOKEN_PATH)] == [503, 200]
    assert sleeps == [RETRY_BACKOFF_SECONDS]
    assert client.budget.ledger.used() == sandbox.quota_used() == 1


# --- 429 and quota ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["seconds", "http-date"])
def test_short_retry_after_is_waited_out_once(
    make_sandbox: Callable[..., Sandbox], make_client: ClientFactory, sleeps: list[float], fmt: str
) -> None:
    """A 429 with Retry-After of 1 s (either format) is waited once, then the call succeeds."""
    sb = make_sandbox(retry_after_format=fmt)
    client = make_client(sb)
    sb.inject(Fault("quota_exhausted", endpoint="list", retry_after=1))
    assert client.list_jobs() == []
    assert [r["status"] for r in requests_to(sb, LIST_PATH)] == [429, 200]
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 1.0
    if fmt == "seconds":
        assert sleeps[0] > 0.5
    assert client.budget.ledger.blocked_until() is None


@pytest.mark.parametrize("fmt", ["seconds", "http-date"])
def test_long_retry_after_blocks_the_key(
    make_sandbox: Callable[..., Sandbox],
    make_client: ClientFactory,
    sleeps: list[float],
    tmp_path: Path,
    fmt: str,
) -> None:
    """A long Retry-After raises QuotaExhausted, is remembered, and a new client sends nothing."""
    sb = make_sandbox(retry_after_format=fmt)
    client = make_client(sb)
    sb.inject(Fault("quota_exhausted", endpoint="list", retry_after=3600))
    before = datetime.now(timezone.utc)
    with pytest.raises(QuotaExhausted) as caught:
        client.list_jobs()
    after = datetime.now(timezone.utc)
    retry_at = caught.value.retry_at
    assert retry_at is not None
    assert before + timedelta(seconds=3598) <= retry_at <= after + timedelta(seconds=3601)
    assert sleeps == []
    blocked = client.budget.ledger.blocked_until()
    assert blocked == pytest.approx(retry_at.timestamp(), abs=0.01)

    seen = len(sb.api_requests)
    fresh = make_client(sb, ledger=RequestLedger.local(tmp_path / "ledger", DEMO_API_KEY))
    with pytest.raises(QuotaExhausted) as again:
        fresh.submit("TAPS", *DAY, "csv")
    assert again.value.retry_at is not None
    assert again.value.retry_at.timestamp() == pytest.approx(blocked, abs=1)
    assert len(sb.api_requests) == seen  # not even a token request
    assert fresh.budget.spent == 0


def test_real_quota_stops_the_fourth_call(
    make_sandbox: Callable[..., Sandbox], make_client: ClientFactory, sleeps: list[float]
) -> None:
    """With a quota of 3, the fourth call meets 429 with a day-long wait and raises QuotaExhausted."""
    sb = make_sandbox(quota_limit=3)
    client = make_client(sb)
    for _ in range(3):
        client.list_jobs()
    with pytest.raises(QuotaExhausted) as caught:
        client.list_jobs()
    assert [r["status"] for r in requests_to(sb, LIST_PATH)] == [200, 200, 200, 429]
    assert sb.quota_used() == 3
    assert caught.value.retry_at is not None
    wait = (caught.value.retry_at - datetime.now(timezone.utc)).total_seconds()
    assert 86_000 < wait <= 86_401
    assert sleeps == []


def test_absurd_retry_after_still_stops_with_quota_exhausted(
    sandbox: Sandbox, make_client: ClientFactory, sleeps: list[float]
) -> None:
    """A 429 whose Retry-After is out of datetime range still ends in QuotaExhausted, not a crash."""
    client = make_client(sandbox)
    sandbox.inject(Fault("quota_exhausted", endpoint="list", retry_after=1e12))
    with pytest.raises(QuotaExhausted):
        client.list_jobs()
    assert sleeps == []


def test_slow_list_beyond_timeout_is_retried(
    sandbox: Sandbox, make_client: ClientFactory, sleeps: list[float]
) -> None:
    """A list answer slower than the client timeout counts as transient: retried once, then succeeds."""
    client = make_client(sandbox, timeout=0.3)
    sandbox.inject(Fault("slow", endpoint="list", delay=30.0))  # waited out, it would leave no retry
    assert client.list_jobs() == []
    assert sleeps == [RETRY_BACKOFF_SECONDS]  # the client gave up on the slow answer and asked again
    assert client.budget.spent == 2
    assert client.budget.ledger.used() == 2


def test_a_request_that_never_left_the_machine_is_not_counted(
    sandbox: Sandbox, tmp_path: Path, sleeps: list[float]
) -> None:
    """A refused connection means the API never saw the call: the ledger takes it back (a timeout above counts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens here once the socket is closed
    ledger = RequestLedger.local(tmp_path / "ledger", DEMO_API_KEY)
    client = TikpayClient(
        f"http://127.0.0.1:{closed_port}/v1",
        sandbox.token_url,
        demo_credentials(),
        RequestBudget(ledger),
        sleep=sleeps.append,
    )
    try:
        with pytest.raises(ApiError, match="connection failed"):
            client.list_jobs()
        with pytest.raises(RequestNotSent, match="nothing was sent"):  # never uncertain: no job can exist
            client.submit("TRIPS", *DAY, "csv")
    finally:
        client.close()
    assert len(sleeps) == MAX_TRANSIENT_RETRIES  # the list call was tried, and retried; the submission once
    assert client.budget.spent == 0 and ledger.used() == 0
    assert RequestLedger.local(tmp_path / "ledger", DEMO_API_KEY).used() == 0  # as another process reads it


# --- parse_retry_after ------------------------------------------------------------------

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def test_parse_retry_after_delta_seconds() -> None:
    """Delta-seconds are added to ``now``."""
    assert parse_retry_after("120", NOW) == NOW + timedelta(seconds=120)
    assert parse_retry_after(" 0 ", NOW) == NOW


def test_parse_retry_after_http_date() -> None:
    """An RFC 9110 HTTP-date becomes that aware UTC instant."""
    parsed = parse_retry_after("Sat, 01 Mar 2025 13:30:00 GMT", NOW)
    assert parsed == datetime(2025, 3, 1, 13, 30, tzinfo=timezone.utc)
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [None, "", "soon", "1.5", "-5", "Someday, 99 Foo 2025"])
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    """Anything that is neither delta-seconds nor an HTTP-date gives None."""
    assert parse_retry_after(value, NOW) is None


def test_parse_retry_after_out_of_range_delta_does_not_raise() -> None:
    """A delta too large for a datetime is clamped to a year, never an exception."""
    parsed = parse_retry_after("1000000000000", NOW)
    assert parsed is not None and parsed >= NOW + timedelta(days=365)


class _Redirector(BaseHTTPRequestHandler):
    """A stand-in API that answers every call with a redirect to another host (the sandbox's downloads)."""

    target: ClassVar[str] = ""
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_a_redirect_is_not_followed_so_the_api_key_never_reaches_another_host(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """requests keeps custom headers such as x-api-key across hosts: the client refuses redirects."""
    _Redirector.target, _Redirector.seen = sandbox.download_base_url + "/anything", []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ledger = RequestLedger.local(tmp_path, DEMO_API_KEY)
    client = TikpayClient(
        f"http://127.0.0.1:{server.server_address[1]}/v1",
        sandbox.token_url,
        demo_credentials(),
        RequestBudget(ledger),
    )
    try:
        with pytest.raises(ApiError, match="redirected"):
            client.list_jobs()
    finally:
        client.close()
        server.shutdown()
    assert len(_Redirector.seen) == 1 and ledger.used() == 1
    assert sandbox.download_requests == []  # the redirect target never saw the key
