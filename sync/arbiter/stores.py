"""Which arbiter store a location names: a ``postgresql://`` URL (sync/arbiter/pgstore.py, several instances
on one database) or a SQLite file (sync/arbiter/store.py, the embedded default).  psycopg is imported only
for a URL."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from sync.arbiter.store import ArbiterStore

SCHEMES = ("postgresql", "postgres")


def is_url(where: str | Path) -> bool:
    """Whether `where` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(where, str) and urllib.parse.urlsplit(where).scheme in SCHEMES


def open_store(where: str | Path, *, clock: Callable[[], float] = time.time) -> ArbiterStore:
    """The arbiter store at `where`, opened and migrated (ArbiterStoreError if it cannot be)."""
    if is_url(where):
        from sync.arbiter.pgstore import PgArbiterStore

        return PgArbiterStore.open(str(where), clock=clock)
    return ArbiterStore.open(where, clock=clock)
