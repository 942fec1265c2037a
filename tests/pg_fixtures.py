"""A real PostgreSQL for the arbiter tests: a database of its own per test, created and dropped by the test.

The server is the machine's (127.0.0.1:5432, trust auth; .ci/run installs and starts it where it is
missing), or the one QRGATE_TEST_POSTGRES names (a URL without a database).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

SERVER = os.environ.get("QRGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def admin() -> psycopg.Connection:
    try:
        return psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise AssertionError(f"no PostgreSQL at {SERVER} (.ci/run installs and starts one): {exc}") from None


@contextmanager
def fresh_database(prefix: str = "qrgate") -> Iterator[str]:
    """The URL of a new, empty database, dropped (whoever is still connected) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

