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



class PrivatePostgres:
    """A PostgreSQL server of the test's own (initdb in a temporary folder, a free port), to stop and start
    mid-run without touching the machine's.  As root it runs as the `postgres` user (initdb refuses root)."""

    def __init__(self) -> None:
        import shutil
        import tempfile
        from pathlib import Path

        from sync_fixtures import free_port

        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
        if not versions:
            raise AssertionError("no PostgreSQL server binaries under /usr/lib/postgresql (apt package postgresql)")
        self.bin = versions[-1].parent
        self.folder = Path(tempfile.mkdtemp(prefix="qrgate-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._rm = shutil.rmtree
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        import subprocess

        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.folder, timeout=120)

    def start(self) -> PrivatePostgres:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        import contextlib
        import subprocess

        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        self._rm(self.folder, ignore_errors=True)
