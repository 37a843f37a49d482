"""The OAuth2 client-credentials token endpoint."""

from __future__ import annotations

import pytest
import requests

from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Fault

FORM_CREDENTIALS = {"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET}


def test_basic_credentials_issue_a_bearer_token(client):
    response = client.token(data={"grant_type": "client_credentials", "scope": "data-api.tikpay.me:write"})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "data-api.tikpay.me:write"
    assert len(body["access_token"]) >= 32
    assert response.headers["Cache-Control"] == "no-store"


def test_each_token_is_fresh_and_opaque(client):
    first, second = (client.token().json()["access_token"] for _ in range(2))
    assert first != second
    assert DEMO_CLIENT_ID not in first


@pytest.mark.parametrize(
    ("mode", "basic_ok", "form_ok"),
    [("basic", True, False), ("form", False, True), ("both", True, True)],
)
def test_token_auth_modes(make_sandbox, client_for, mode, basic_ok, form_ok):
    client = client_for(make_sandbox(token_auth=mode))
    basic = client.token()
    form = client.token(auth=None, data={"grant_type": "client_credentials", **FORM_CREDENTIALS})
    assert basic.status_code == (200 if basic_ok else 401)
    assert form.status_code == (200 if form_ok else 401)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"auth": (DEMO_CLIENT_ID, "wrong-secret")},
        {"auth": ("someone-else", DEMO_CLIENT_SECRET)},
        {"auth": None},
        {"auth": None, "data": {"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID}},
    ],
    ids=["wrong-secret", "wrong-id", "no-credentials", "form-without-secret"],
)
def test_wrong_credentials_are_invalid_client(client, kwargs):
    response = client.token(**kwargs)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_unsupported_grant_type(client):
    response = client.token(data={"grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_token_expires_by_the_sandbox_clock(sandbox, client):
    client.headers()  # fetch a token
    assert client.list().status_code == 200
    sandbox.clock.advance(3599)
    assert client.list().status_code == 200
    sandbox.clock.advance(2)
    response = client.list()
    assert response.status_code == 401
    assert response.json()["message"] == "token expired"
    assert "errorId" in response.json()


def test_token_ttl_setting(make_sandbox, client_for):
    sb = make_sandbox(token_ttl_seconds=60)
    client = client_for(sb)
    assert client.token().json()["expires_in"] == 60
    client.headers()
    sb.clock.advance(61)
    assert client.list().status_code == 401


def test_token_calls_are_not_counted_in_the_quota(sandbox, client):
    for _ in range(25):
        assert client.token().status_code == 200
    assert sandbox.quota_used(DEMO_API_KEY) == 0


def test_token_endpoint_status_fault(sandbox, client):
    sandbox.inject(Fault("status", endpoint="token", status=503))
    assert client.token().status_code == 503
    assert client.token().status_code == 200


def test_token_endpoint_rejects_get(sandbox):
    response = requests.get(sandbox.token_url, timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
