"""Column names that never collide in the warehouse, decided from the file's header alone.

dlt normalises names with its ``snake_case`` convention, kept deliberately: every
existing table and column keeps its name, and all of dlt's destinations accept the
result. That convention alone would turn ``Zoë`` into ``zox`` (and dlt's ``sql_*_v1``
conventions into ``zo``), and ``a b`` and ``a_b`` into the same ``a_b``, which stops dlt's
extract. So a name's accents are taken off first (``Zoë`` → ``zoe``, ``Ōtāhuhu`` →
``otahuhu``), and where two names of one file still meet, each name that is not already
in normal form gets a short hash of its exact original text (``zoe_3f1c``): the same
header name always gets the same column, whatever else the file holds.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence

from dlt.common.normalizers.naming.snake_case import NamingConvention

from tikpay_source.settings import JOB_ID_COLUMN, WINDOW_END_COLUMN, WINDOW_START_COLUMN

_NAMING = NamingConvention()
_RESERVED = frozenset({JOB_ID_COLUMN, WINDOW_START_COLUMN, WINDOW_END_COLUMN})
_HASH_CHARS = 4


def normal_name(name: str) -> str:
    """``name`` as its warehouse column, before telling colliding names apart."""
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return _NAMING.normalize_identifier(plain)


def column_names(header: Sequence[str]) -> list[str]:
    """The warehouse column of every header name, distinct from each other and from ``_tikpay_*``."""
    normal = [normal_name(name) for name in header]
    seen: dict[str, int] = {}
    for name in [*normal, *_RESERVED]:
        seen[name] = seen.get(name, 0) + 1
    return [
        _tagged(original, name) if seen[name] > 1 and (original != name or name in _RESERVED) else name
        for original, name in zip(header, normal, strict=True)
    ]


def _tagged(original: str, name: str) -> str:
    digest = hashlib.sha256(original.encode()).hexdigest()[:_HASH_CHARS]
    return _NAMING.normalize_identifier(f"{name}_{digest}")
