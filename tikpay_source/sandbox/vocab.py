"""Fixed vocabularies the synthetic data draws from.

The awkward entries are deliberate: real operator exports contain commas, double
quotes and newlines inside fields, non-ASCII names, leading zeros and empty values,
and a connector that has only seen tidy data breaks on the first real file. Because
rows pick uniformly from these lists, every awkward value shows up in a fixed,
deterministic share of rows.
"""

from __future__ import annotations

from typing import NamedTuple


class Stop(NamedTuple):
    """A stop or station: its id, display name and coordinates."""

    stop_id: str
    name: str
    latitude: str
    longitude: str


class Route(NamedTuple):
    """A route and the fare rules used to price journeys on it."""

    route_id: str
    name: str
    mode: str
    stops: tuple[int, ...]  # indexes into STOPS, in running order
    base_fare: float
    fare_per_km: float
    km_per_stop: float


STOPS: tuple[Stop, ...] = (
    Stop("200060", "Central, Platform 3", "-33.882900", "151.206300"),
    Stop("200070", "Town Hall", "-33.873300", "151.206900"),
    Stop("200080", "Wynyard", "-33.865800", "151.205600"),
    Stop("200020", 'Circular Quay "Wharf 4"', "-33.861200", "151.210900"),
    Stop("201110", "Museum", "-33.876200", "151.209600"),
    Stop("201130", "Kings Cross", "-33.874900", "151.222700"),
    Stop("202210", "Bondi Junction", "-33.891200", "151.247600"),
    Stop("204210", "Redfern", "-33.892700", "151.198600"),
    Stop("204220", "Newtown", "-33.897900", "151.179300"),
    Stop("215010", "Parramatta", "-33.817300", "151.003400"),
    Stop("213510", "Strathfield", "-33.871300", "151.094000"),
    Stop("021210", "Ōtāhuhu", "-36.946900", "174.834100"),
    Stop("206710", "Chatswood", "-33.797000", "151.180800"),
    Stop("209510", "Manly Wharf", "-33.800300", "151.284300"),
    Stop("201020", "Café Street / Rue du Café", "-33.879400", "151.215600"),
    Stop("207710", "Hornsby", "-33.702700", "151.099100"),
    Stop("217010", "Liverpool", "-33.924900", "150.926400"),
    Stop("275010", "Penrith", "-33.750700", "150.694100"),
)

ROUTES: tuple[Route, ...] = (
    Route("T1", "North Shore & Western Line", "train", (17, 9, 10, 0, 1, 2, 12, 15), 3.20, 0.11, 6.5),
    Route("T4", "Eastern Suburbs", "train", (0, 1, 2, 4, 5, 6), 3.20, 0.12, 1.8),
    Route("333", "Circular Quay, Bondi", "bus", (3, 4, 14, 5, 6), 2.24, 0.09, 1.6),
    Route("F1", 'Manly "Fast" Ferry', "ferry", (3, 13), 6.43, 0.05, 11.0),
    Route("L1", "Dulwich Hill Line", "light_rail", (0, 14, 4, 7, 8), 2.24, 0.10, 1.2),
    Route("M1", "Metro North West", "metro", (15, 12, 2, 1, 0, 11), 3.20, 0.10, 5.0),
    Route("880", "Liverpool – Penrith", "bus", (16, 10, 9, 17), 3.79, 0.08, 9.0),
)

CUSTOMER_POOL = 50_000  # customer ids that taps, trips and payments refer to

FIRST_NAMES: tuple[str, ...] = (
    "Olivia",
    "Jack",
    "Zoë",
    "Noah",
    "Aroha",
    "José",
    "Mia",
    "Liam",
    "Chloé",
    "Wiremu",
    "Siobhán",
    "Wei",
)
LAST_NAMES: tuple[str, ...] = (
    "Smith",
    "Müller",
    "O'Brien",
    "Nguyễn",
    "Tāne",
    "Brown",
    "Wilson",
    "García",
    "Lee",
    "van der Berg",
)
# Plain-ASCII spellings for e-mail addresses, index-aligned with the lists above.
FIRST_ASCII: tuple[str, ...] = (
    "olivia",
    "jack",
    "zoe",
    "noah",
    "aroha",
    "jose",
    "mia",
    "liam",
    "chloe",
    "wiremu",
    "siobhan",
    "wei",
)
LAST_ASCII: tuple[str, ...] = (
    "smith",
    "mueller",
    "obrien",
    "nguyen",
    "tane",
    "brown",
    "wilson",
    "garcia",
    "lee",
    "vanderberg",
)

STREETS: tuple[str, ...] = (
    "George St",
    "Café Lane",
    "Pitt Street Mall",
    "Ōtāhuhu Rd",
    "King St",
    "Rue de l'Église",
)
SUBURBS: tuple[str, ...] = (
    "Sydney NSW 2000",
    "Surry Hills NSW 2010",
    "Darwin NT 0800",
    "Auckland 1062",
    "Bondi NSW 2026",
)

CONCESSION_TYPES: tuple[str, ...] = ("", "", "", "student", "senior", "pensioner", "", "disability")
CUSTOMER_STATUSES: tuple[str, ...] = ("active", "active", "active", "active", "suspended", "closed")
NOTES: tuple[str, ...] = (
    "",
    "",
    "",
    'Prefers "paper" receipts',
    "Moved, new card issued; old card blocked",
    "Called support\nissue resolved on second call",
    "Rückruf erbeten — Café-Kunde",
    "",
)

PAYMENT_METHODS: tuple[str, ...] = ("card", "card", "apple_pay", "google_pay", "account, auto top-up")
PAYMENT_STATUSES: tuple[str, ...] = (
    "settled",
    "settled",
    "settled",
    "settled",
    "settled",
    "settled",
    "declined",
    "refunded",
    "pending",
)
TOP_UP_AMOUNTS: tuple[str, ...] = ("10.00", "20.00", "50.00", "100.00")
