"""Deterministic synthetic transit data, generated one UTC hour at a time.

Each hour's rows come from an RNG seeded by (seed, stream, hour index), so any window
can be produced on its own, in any order, and streamed: a million-row report is never
held in memory, and the same seed always yields byte-identical files. TAPS and TRIPS
share one "journeys" stream per hour (a journey is a tap on plus, usually, a tap off),
so the two reports describe the same travel.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator
from itertools import islice
from zoneinfo import ZoneInfo

from tikpay_source.sandbox import vocab
from tikpay_source.sandbox.clock import WallClock, parse_local, utc_hours_covering

Row = tuple[str, ...]

REPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "TAPS": (
        "tap_id", "tap_time", "tap_type", "card_id", "customer_id", "stop_id", "stop_name",
        "device_id", "route_id", "mode", "latitude", "longitude",
    ),
    "TRIPS": (
        "trip_id", "customer_id", "card_id", "tap_on_id", "tap_off_id", "tap_on_time", "tap_off_time",
        "origin_stop_name", "destination_stop_name", "route_id", "route_name", "mode", "fare_amount",
        "distance_km", "concession",
    ),
    "PAYMENTS": (
        "payment_id", "payment_time", "customer_id", "amount", "currency", "method", "status", "reference",
    ),
    "CUSTOMERS": (
        "customer_id", "created_at", "full_name", "email", "postal_address", "concession_type", "status",
        "notes",
    ),
}  # fmt: skip

# The one column whose local wall-clock time decides whether a row is in a window.
TIME_COLUMN: dict[str, str] = {
    "TAPS": "tap_time",
    "TRIPS": "tap_on_time",
    "PAYMENTS": "payment_time",
    "CUSTOMERS": "created_at",
}

_ID_SPACE = 10_000_000  # ids are hour * _ID_SPACE + sequence: unique and numeric


@functools.cache
def _card(customer: int) -> str:
    """The customer's card number: 16 digits that always start with zeros (text, not a number)."""
    return f"{(customer * 7_919_113 + 12_345) % 10**13:016d}"


class _Journey:
    """One journey drawn from the shared stream; TAPS and TRIPS rows are views of it."""

    __slots__ = (
        "card",
        "concession",
        "customer",
        "distance",
        "fare",
        "off",
        "off_at",
        "on",
        "on_at",
        "route",
    )

    def __init__(self, rng: random.Random, hour: int) -> None:
        r = rng.random
        route = vocab.ROUTES[int(r() * len(vocab.ROUTES))]
        n_stops = len(route.stops)
        a = int(r() * n_stops)
        b = (a + 1 + int(r() * (n_stops - 1))) % n_stops
        cust = 1 + int(r() * vocab.CUSTOMER_POOL)
        self.route = route
        self.customer = "" if r() < 0.05 else str(cust)  # unregistered cards have no customer
        self.card = _card(cust)
        self.on = vocab.STOPS[route.stops[a]]
        self.on_at = hour * 3600 + int(r() * 3600)
        distance = abs(b - a) * route.km_per_stop + r() * 0.5
        self.concession = r() < 0.2
        fare = (route.base_fare + route.fare_per_km * distance) * (0.5 if self.concession else 1.0)
        if r() < 0.04:  # forgot to tap off: no tap off, no fare, no distance
            self.off, self.off_at, self.fare, self.distance = None, 0, "", ""
        else:
            self.off = vocab.STOPS[route.stops[b]]
            self.off_at = self.on_at + 120 + int(r() * 2700)
            self.fare, self.distance = f"{fare:.2f}", f"{distance:.2f}"


def _journeys(seed: int, hour: int) -> Iterator[_Journey]:
    rng = random.Random(f"{seed}:JOURNEYS:{hour}")
    while True:
        yield _Journey(rng, hour)


def _taps(seed: int, hour: int, n: int, wall: WallClock) -> list[tuple[int, Row]]:
    out: list[tuple[int, Row]] = []
    base = hour * _ID_SPACE
    for i, j in enumerate(_journeys(seed, hour)):
        if len(out) >= n:
            break
        taps = [("ON", j.on, j.on_at)] if j.off is None else [("ON", j.on, j.on_at), ("OFF", j.off, j.off_at)]
        for k, (kind, stop, at) in enumerate(taps):
            device = f"{j.route.mode[:3].upper()}-{stop.stop_id}-{(i + k) % 4 + 1}"
            row = (
                str(base + 2 * i + k), wall.text(at), kind, j.card, j.customer, stop.stop_id, stop.name,
                device, j.route.route_id, j.route.mode, stop.latitude, stop.longitude,
            )  # fmt: skip
            out.append((at, row))
    return out[:n]


def _trips(seed: int, hour: int, n: int, wall: WallClock) -> list[tuple[int, Row]]:
    out: list[tuple[int, Row]] = []
    base = hour * _ID_SPACE
    for i, j in enumerate(islice(_journeys(seed, hour), n)):
        off = j.off
        row = (
            str(base + i), j.customer, j.card, str(base + 2 * i), "" if off is None else str(base + 2 * i + 1),
            wall.text(j.on_at), "" if off is None else wall.text(j.off_at), j.on.name,
            "" if off is None else off.name, j.route.route_id, j.route.name, j.route.mode, j.fare,
            j.distance, "true" if j.concession else "false",
        )  # fmt: skip
        out.append((j.on_at, row))
    return out


def _payments(seed: int, hour: int, n: int, wall: WallClock) -> list[tuple[int, Row]]:
    rng = random.Random(f"{seed}:PAYMENTS:{hour}")
    r = rng.random
    out: list[tuple[int, Row]] = []
    base = hour * _ID_SPACE
    for i in range(n):
        at = hour * 3600 + int(r() * 3600)
        status = vocab.PAYMENT_STATUSES[int(r() * len(vocab.PAYMENT_STATUSES))]
        if r() < 0.6:
            amount = vocab.TOP_UP_AMOUNTS[int(r() * len(vocab.TOP_UP_AMOUNTS))]
        else:
            amount = f"{2 + r() * 8:.2f}"
        if status == "refunded":
            amount = "-" + amount
        pick = r()
        if pick < 0.2:
            reference = ""
        elif pick < 0.3:
            reference = 'Top-up "auto", kiosk'
        elif pick < 0.35:
            reference = "Réf. café kiosk"
        else:
            reference = f"INV-{int(r() * 10**7):08d}"
        row = (
            str(base + i), wall.text(at), str(1 + int(r() * vocab.CUSTOMER_POOL)), amount,
            "NZD" if r() < 0.05 else "AUD", vocab.PAYMENT_METHODS[int(r() * len(vocab.PAYMENT_METHODS))],
            status, reference,
        )  # fmt: skip
        out.append((at, row))
    return out


def _customers(seed: int, hour: int, n: int, wall: WallClock) -> list[tuple[int, Row]]:
    rng = random.Random(f"{seed}:CUSTOMERS:{hour}")
    r = rng.random
    out: list[tuple[int, Row]] = []
    base = hour * _ID_SPACE
    for i in range(n):
        at = hour * 3600 + int(r() * 3600)
        f, la = int(r() * len(vocab.FIRST_NAMES)), int(r() * len(vocab.LAST_NAMES))
        email = "" if r() < 0.1 else f"{vocab.FIRST_ASCII[f]}.{vocab.LAST_ASCII[la]}{i}@example.com"
        street = f"{1 + int(r() * 200)} {vocab.STREETS[int(r() * len(vocab.STREETS))]}"
        suburb = vocab.SUBURBS[int(r() * len(vocab.SUBURBS))]
        shape = r()
        address = "" if shape < 0.05 else f"{street}\n{suburb}" if shape < 0.4 else f"{street}, {suburb}"
        row = (
            str(base + i), wall.text(at), f"{vocab.FIRST_NAMES[f]} {vocab.LAST_NAMES[la]}", email, address,
            vocab.CONCESSION_TYPES[int(r() * len(vocab.CONCESSION_TYPES))],
            vocab.CUSTOMER_STATUSES[int(r() * len(vocab.CUSTOMER_STATUSES))],
            vocab.NOTES[int(r() * len(vocab.NOTES))],
        )  # fmt: skip
        out.append((at, row))
    return out


_GENERATORS: dict[str, Callable[[int, int, int, WallClock], list[tuple[int, Row]]]] = {
    "TAPS": _taps,
    "TRIPS": _trips,
    "PAYMENTS": _payments,
    "CUSTOMERS": _customers,
}


class ReportData:
    """The synthetic data set of one sandbox: rows of any report type for any window."""

    def __init__(self, seed: int, timezone: str, rows_per_hour: Callable[[str], int]) -> None:
        self._seed = seed
        self._tz = ZoneInfo(timezone)
        self._rows_per_hour = rows_per_hour

    def rows(self, report_type: str, start: str, end: str) -> Iterator[Row]:
        """Stream the rows whose primary time column is in the half-open local window [start, end).

        Membership compares the naive local wall-clock text written in the file, so in a
        DST fall-back the repeated hour belongs wholly to whichever window holds that
        wall time, and wall-contiguous windows never lose or double a row.
        """
        generate = _GENERATORS[report_type]
        n = self._rows_per_hour(report_type)
        col = REPORT_COLUMNS[report_type].index(TIME_COLUMN[report_type])
        wall = WallClock(self._tz)
        hours = utc_hours_covering(parse_local(start), parse_local(end), self._tz) if n > 0 else range(0)
        for hour in hours:
            batch = generate(self._seed, hour, n, wall)
            batch.sort(key=lambda item: item[0])
            for _, row in batch:
                if start <= row[col] < end:  # ISO text compares like the times it spells
                    yield row

    def count(self, report_type: str, start: str, end: str) -> int:
        """Number of rows in the window, streamed rather than materialised."""
        return sum(1 for _ in self.rows(report_type, start, end))

    def has_rows(self, report_type: str, start: str, end: str) -> bool:
        """Whether the window holds any row; stops at the first one, so it is cheap."""
        return next(self.rows(report_type, start, end), None) is not None
