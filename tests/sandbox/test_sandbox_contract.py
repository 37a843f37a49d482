"""Contract test: the sandbox answers as the shared OpenAPI description says.

Schemathesis generates requests from ``openapi.yaml`` (valid and invalid bodies,
unexpected methods, missing auth) and checks every answer against the described status
codes, content types and response schemas. ``positive_data_acceptance`` is excluded
because the spec's ``LocalDateTime`` is a bare string without a pattern: schemathesis
would call "abc" a valid startTime, while the sandbox (rightly) refuses it with 400.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

import tikpay_source.sandbox
from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox, SandboxSettings

pytestmark = pytest.mark.e2e  # a sandbox per contract check

SPEC = Path(tikpay_source.sandbox.__file__).with_name("openapi.yaml")
schema = schemathesis.openapi.from_path(SPEC)


@pytest.fixture(scope="module")
def contract_sandbox() -> Iterator[tuple[Sandbox, dict[str, str]]]:
    """One sandbox for all generated cases, with a quota large enough for them."""
    with Sandbox(
        SandboxSettings(quota_limit=100_000, complete_after_list_calls=0, complete_after_seconds=0.0)
    ) as sb:
        token = requests.post(
            sb.token_url,
            data={"grant_type": "client_credentials"},
            auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
            timeout=10,
        ).json()["access_token"]
        yield sb, {"Authorization": f"Bearer {token}", "x-api-key": DEMO_API_KEY}


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_openapi(case, contract_sandbox):
    sb, headers = contract_sandbox
    case.call_and_validate(base_url=sb.base_url, headers=headers, excluded_checks=[positive_data_acceptance])


def test_spec_is_the_shared_one():
    """The sandbox's copy of the spec is the one in ../shared beside the project (as in CI)."""
    shared = Path(__file__).resolve().parents[3] / "shared" / "tikpay-data-api.openapi.yaml"
    if not shared.exists():
        pytest.skip(f"no shared spec beside the project at {shared}")
    assert SPEC.read_bytes() == shared.read_bytes()
