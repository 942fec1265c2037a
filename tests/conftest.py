"""Shared fixtures: real SQLite files on tmp_path, real issuer keys, the real CLI in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.config import load_config
from gate.decide import Decider
from gate.keys import IssuerKey, Keyring, KeyStore
from gate.store import Store
from gate.ticket import Ticket
from gate.verify import Verifier

ROOT = Path(__file__).resolve().parent.parent

pytest.register_assert_rewrite("sync_fixtures")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A gate's home folder, there but empty (a command other than the few that make one refuses a missing home)."""
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture(params=["hmac", "ed25519"])
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def issuer(home: Path) -> IssuerKey:
    key = IssuerKey.new("show7", "hmac")
    KeyStore(home / "keys").add_issuer_key(key)
    return key


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "gate.db") as s:
        yield s


@pytest.fixture
def make_decider(store: Store) -> Callable[..., Decider]:
    def make(*keys: IssuerKey, events: tuple[str, ...] = (), gate_id: str = "gate-1", now: float = 1.8e9) -> Decider:
        verifier = Verifier(Keyring(k.verify_key() for k in keys), events, clock=lambda: now)
        return Decider(verifier, store, gate_id, clock=lambda: now)
    return make


def mint(key: IssuerKey, ticket_id: str = "9f2", seat: str = "12B", **fields: object) -> str:
    return key.sign(Ticket(event=key.event, ticket_id=ticket_id, seat=seat, **fields))  # type: ignore[arg-type]


def gate_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRGATE_")}
    env.update(QRGATE_HOME=str(home), PYTHONPATH=str(ROOT), **extra)
    return env


@pytest.fixture
def gate_cli(home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `gate` command (python -m gate.cli) with QRGATE_HOME=home."""
    def run(*args: str, input: str | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gate.cli", *args], input=input, capture_output=True,
                              text=True, env=gate_env(home), cwd=ROOT, check=check, timeout=120)
    return run


@pytest.fixture
def config_for(home: Path) -> Callable[..., object]:
    return lambda **overrides: load_config(home, env={}, overrides=overrides)


# A real mosquitto on a free port and a venue (issuer key, arbiter home, gate homes) on it, for every
# test that takes `broker` or `site`.  sync_fixtures is imported lazily: it imports this module.
@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    from sync_fixtures import running_broker
    yield from running_broker(tmp_path)


@pytest.fixture
def site(tmp_path: Path, broker: Any) -> Iterator[Any]:
    from sync_fixtures import running_site
    yield from running_site(tmp_path, broker)
