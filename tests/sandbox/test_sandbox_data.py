"""Synthetic data: determinism, files equal to ground truth, window semantics across DST."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from itertools import pairwise

import defusedxml.ElementTree as ET
import pytest
import requests

from tikpay_source.sandbox import REPORT_COLUMNS, TIME_COLUMN, Sandbox, SandboxSettings

REPORT_TYPES = sorted(REPORT_COLUMNS)
NUMERIC = {
    "TAPS": ("tap_id", "customer_id", "stop_id", "latitude", "longitude"),
    "TRIPS": ("trip_id", "customer_id", "tap_on_id", "tap_off_id", "fare_amount", "distance_km"),
    "PAYMENTS": ("payment_id", "customer_id", "amount"),
    "CUSTOMERS": ("customer_id",),
}
FALL_BACK = ("2025-04-06T00:00:00", "2025-04-07T00:00:00")  # Sydney: 02:00-03:00 happens twice
SPRING_FORWARD = ("2025-10-05T00:00:00", "2025-10-06T00:00:00")  # Sydney: 02:00-03:00 never happens


def parse_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def parse_xml(data: bytes) -> list[dict[str, str]]:
    root = ET.fromstring(data)
    return [{**record.attrib, **{child.tag: child.text or "" for child in record}} for record in root]


def download(client, **fields) -> bytes:
    job = client.complete(client.submit_ok(**fields))
    assert job["status"] == "COMPLETE", job
    response = requests.get(job["downloadUrl"], timeout=30)
    assert response.status_code == 200
    return response.content


@pytest.mark.parametrize("report_type", REPORT_TYPES)
@pytest.mark.parametrize(("file_type", "parse"), [("csv", parse_csv), ("xml", parse_xml)])
def test_file_rows_equal_ground_truth(sandbox, client, report_type, file_type, parse):
    start, end = FALL_BACK
    rows = parse(download(client, reportType=report_type, fileType=file_type, startTime=start, endTime=end))
    truth = sandbox.ground_truth(report_type, start, end)
    assert rows == truth
    assert len(truth) == sandbox.count_rows(report_type, start, end) > 0
    assert list(truth[0]) == list(REPORT_COLUMNS[report_type])


def test_csv_layout(sandbox, client):
    data = download(client, reportType="TRIPS")
    assert data.startswith(b"trip_id,customer_id,card_id,tap_on_id,")
    assert data.endswith(b"\r\n")
    assert data.count(b"\n") == data.count(b"\r\n")  # no bare LF line ends outside quoted fields here


def test_xml_layout_has_id_attribute_and_empty_elements(sandbox, client):
    data = download(client, reportType="TRIPS", fileType="xml")
    root = ET.fromstring(data)
    assert (root.tag, root.attrib) == ("report", {"type": "TRIPS"})
    assert {record.tag for record in root} == {"record"}
    assert all(set(record.attrib) == {"trip_id"} for record in root)
    assert b"<fare_amount/>" in data  # empty values are empty elements, never omitted
    assert all(len(record) == len(REPORT_COLUMNS["TRIPS"]) - 1 for record in root)


def test_same_seed_same_bytes_other_seed_other_bytes(client_for):
    def bytes_for(seed: int) -> bytes:
        with Sandbox(
            SandboxSettings(seed=seed, complete_after_list_calls=0, complete_after_seconds=0.0)
        ) as sb:
            return download(client_for(sb), reportType="CUSTOMERS")

    first, again, other = bytes_for(7), bytes_for(7), bytes_for(8)
    assert first == again
    assert first != other


def test_rows_are_in_their_window_and_in_time_order(sandbox):
    for report_type in REPORT_TYPES:
        column = TIME_COLUMN[report_type]
        times = [
            row[column]
            for row in sandbox.ground_truth(report_type, "2025-03-01T05:00:00", "2025-03-01T09:00:00")
        ]
        assert times, report_type
        assert all("2025-03-01T05:00:00" <= t < "2025-03-01T09:00:00" for t in times)
        if report_type != "TAPS":  # tap-offs of the previous hour's journeys interleave
            assert times == sorted(times)


@pytest.mark.parametrize(
    ("window", "hours"),
    [(FALL_BACK, 25), (SPRING_FORWARD, 23), (("2025-03-01T00:00:00", "2025-03-02T00:00:00"), 24)],
)
def test_local_days_have_23_24_or_25_hours_of_rows(sandbox, window, hours):
    assert sandbox.count_rows("TRIPS", *window) == hours * 20  # 20 trips per UTC hour by default
    assert sandbox.count_rows("PAYMENTS", *window) == hours * 10


@pytest.mark.parametrize("day", [FALL_BACK, SPRING_FORWARD])
@pytest.mark.parametrize("report_type", REPORT_TYPES)
def test_hourly_windows_neither_lose_nor_double_rows(sandbox, day, report_type):
    start = datetime.fromisoformat(day[0])
    bounds = [(start + timedelta(hours=h)).isoformat() for h in range(25)]
    hourly = [row for a, b in pairwise(bounds) for row in sandbox.ground_truth(report_type, a, b)]
    daily = sandbox.ground_truth(report_type, *day)
    key = REPORT_COLUMNS[report_type][0]
    assert sorted(r[key] for r in hourly) == sorted(r[key] for r in daily)
    assert len({r[key] for r in daily}) == len(daily)


def test_repeated_fall_back_hour_is_one_wall_clock_window(sandbox):
    rows = sandbox.ground_truth("TRIPS", "2025-04-06T02:00:00", "2025-04-06T03:00:00")
    assert len(rows) == 40  # two UTC hours share the wall-clock hour 02:00-03:00
    assert sandbox.count_rows("TRIPS", "2025-10-05T02:00:00", "2025-10-05T03:00:00") == 0


AWKWARD = {
    "TAPS": {"stop_name": ["Central, Platform 3", 'Circular Quay "Wharf 4"', "Ōtāhuhu", "Café"]},
    "CUSTOMERS": {
        "postal_address": ["\n", ", ", ""],
        "notes": ['"paper"', "\n", "Café", ""],
        "full_name": ["Zoë", "Müller", "O'Brien"],
        "email": [""],
    },
    "TRIPS": {"fare_amount": [""], "tap_off_time": [""], "route_name": [", ", '"Fast"']},
    "PAYMENTS": {"reference": ["", '"auto", kiosk', "Réf."], "method": [", "]},
}


@pytest.mark.parametrize("report_type", sorted(AWKWARD))
def test_awkward_values_are_present_and_round_trip(make_sandbox, client_for, report_type):
    sb = make_sandbox(complete_after_list_calls=0)
    client = client_for(sb)
    truth = sb.ground_truth(report_type, *FALL_BACK)
    for column, needles in AWKWARD[report_type].items():
        values = [row[column] for row in truth]
        for needle in needles:
            assert any(needle in v if needle else v == "" for v in values), (column, needle)
    for file_type, parse in (("csv", parse_csv), ("xml", parse_xml)):
        parsed = parse(
            download(
                client,
                reportType=report_type,
                fileType=file_type,
                startTime=FALL_BACK[0],
                endTime=FALL_BACK[1],
            )
        )
        assert parsed == truth


@pytest.mark.parametrize("report_type", REPORT_TYPES)
def test_numeric_columns_are_numeric_and_card_ids_keep_leading_zeros(sandbox, report_type):
    rows = sandbox.ground_truth(report_type, *FALL_BACK)
    for column in NUMERIC[report_type]:
        for row in rows:
            if row[column]:
                float(row[column])
    for row in rows:
        if "card_id" in row:
            assert len(row["card_id"]) == 16 and row["card_id"].startswith("000")


def test_rows_per_hour_scales_each_type(make_sandbox):
    sb = make_sandbox(rows_per_hour={"PAYMENTS": 3})
    assert sb.count_rows("PAYMENTS", "2025-03-01T00:00:00", "2025-03-01T10:00:00") == 30
    assert sb.count_rows("TRIPS", "2025-03-01T00:00:00", "2025-03-01T10:00:00") == 200
    every = make_sandbox(rows_per_hour=5)
    assert every.count_rows("CUSTOMERS", "2025-03-01T00:00:00", "2025-03-01T10:00:00") == 50


def test_trips_and_taps_describe_the_same_journeys(sandbox):
    taps = {row["tap_id"]: row for row in sandbox.ground_truth("TAPS", *FALL_BACK)}
    trips = sandbox.ground_truth("TRIPS", "2025-04-06T03:00:00", "2025-04-06T12:00:00")
    checked = 0
    for trip in trips:
        tap_on = taps.get(trip["tap_on_id"])
        if tap_on is not None:
            assert (tap_on["tap_type"], tap_on["tap_time"], tap_on["card_id"]) == (
                "ON",
                trip["tap_on_time"],
                trip["card_id"],
            )
            checked += 1
    assert checked == len(trips) > 0
