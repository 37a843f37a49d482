"""A faithful local stand-in for the Tikpay Data API, served over real HTTP on loopback.

It backs the quickstart, the connector's tests and users' own CI: OAuth2 token
endpoint, report submission and listing with quota and job lifecycle, and a separate
object-storage host serving pre-signed download links, over deterministic synthetic
transit data. See "The sandbox" in the README.
"""

from __future__ import annotations

from tikpay_source.sandbox.core import Sandbox
from tikpay_source.sandbox.data import REPORT_COLUMNS, TIME_COLUMN
from tikpay_source.sandbox.faults import Fault
from tikpay_source.sandbox.settings import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SandboxSettings

__all__ = [
    "DEMO_API_KEY",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "REPORT_COLUMNS",
    "TIME_COLUMN",
    "Fault",
    "Sandbox",
    "SandboxSettings",
]
