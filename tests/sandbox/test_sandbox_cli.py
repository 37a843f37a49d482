"""``python -m tikpay_source.sandbox`` as a user runs it: a real process on a free port."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

import pytest
import requests

from tikpay_source.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

pytestmark = pytest.mark.e2e  # runs the sandbox CLI as a process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cli():
    """The sandbox running as a subprocess; yields (process, printed lines until the env block)."""
    port = _free_port()
    args = [sys.executable, "-m", "tikpay_source.sandbox", "--port", str(port), "--seed", "3"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("export SOURCES__TIKPAY__API_KEY="):
                break
        yield process, lines, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


def test_cli_prints_urls_credentials_and_env_and_serves(cli):
    _, lines, port = cli
    text = "\n".join(lines)
    env = dict(re.findall(r"^export (SOURCES__TIKPAY__\w+)=(.*)$", text, re.M))
    assert env == {
        "SOURCES__TIKPAY__BASE_URL": f"http://127.0.0.1:{port}/v1",
        "SOURCES__TIKPAY__TOKEN_URL": f"http://127.0.0.1:{port}/oauth2/token",
        "SOURCES__TIKPAY__CLIENT_ID": DEMO_CLIENT_ID,
        "SOURCES__TIKPAY__CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "SOURCES__TIKPAY__API_KEY": DEMO_API_KEY,
    }
    token = requests.post(
        env["SOURCES__TIKPAY__TOKEN_URL"],
        data={"grant_type": "client_credentials"},
        auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
        timeout=10,
    )
    assert token.status_code == 200
    headers = {"Authorization": f"Bearer {token.json()['access_token']}", "x-api-key": DEMO_API_KEY}
    listed = requests.get(f"{env['SOURCES__TIKPAY__BASE_URL']}/report-jobs-list", headers=headers, timeout=10)
    assert listed.json() == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_stops_cleanly(cli, sig):
    process, _, _ = cli
    process.send_signal(sig)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Traceback" not in err
    assert "stopped" in out


def test_cli_reports_a_busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tikpay_source.sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "Traceback" not in result.stderr
