"""Fixtures for the box office over HTTP: real `gate boxoffice serve` and `gate fake-agent serve` processes.

`Theatre` sets a box office and a FAKE agent up with the real command (keys, identities, listings),
starts both services on free loopback ports and gives wallets (files under tmp_path) that talk to
them over HTTP (gate.ownership.online.OnlineWallet), or (`pages`) holders made with the real
`gate wallet` commands, each serving its wallet page (`gate wallet serve`).
"""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from conftest import gate_env

from gate.ownership.block import Message
from gate.ownership.client import AgentClient, BoxOfficeClient
from gate.ownership.online import OnlineWallet
from gate.ownership.wallet import Wallet

EVENT = "show7"


def run_gate(root: Path, who: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "gate.cli", "--home", str(root / who), *args], capture_output=True,
                            text=True, env={**gate_env(root / who), **(env or {})}, cwd=root, timeout=120)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


class Service:
    """A `gate ... serve` process; its URL is the end of its first line of output."""

    def __init__(self, root: Path, who: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = open(root / f"{who}.log", "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "gate.cli", "--home", str(root / who), *args],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=root,
                                     env={**gate_env(root / who), **(env or {})})
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        assert " at http://" in line, f"{args}: {line!r} {(root / f'{who}.log').read_text()}"
        self.url = line.rsplit(" at ", 1)[1].strip()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@dataclass
class Theatre:
    root: Path
    reservation: float
    office: Service | None = None
    agent: Service | None = None
    wallets: dict[str, OnlineWallet] = field(default_factory=dict)
    served: list[Service] = field(default_factory=list)  # `gate wallet serve` processes (`pages`)
    chain: str = ""
    restarts: int = 0
    env: dict[str, str] = field(default_factory=dict)  # for the box office's commands (keys dir, broker)
    slot: int = 0  # seconds per code slot of the listings (0: ownership.slot)
    verbose: bool = False  # the box office logs at debug level (every request line)

    @property
    def bo(self) -> BoxOfficeClient:
        assert self.office is not None
        return BoxOfficeClient(self.office.url)

    def list(self, *ids: str, price: str = "25.00", valid_from: int = 0, valid_until: int = 0) -> None:
        now = int(time.time())
        for ticket_id in ids:
            run_gate(self.root, "bo", "boxoffice", "add", "--event", EVENT, "--seat", f"S-{ticket_id}", "--id",
                     ticket_id, "--price", price, "--title", "Hamlet", "--venue", "Town Hall",
                     "--valid-from", str(valid_from or now - 60),
                     "--valid-until", str(valid_until or now + 86400),
                     *(("--slot", str(self.slot)) if self.slot else ()), env=self.env)

    def start_office(self, port: int = 0) -> None:
        self.office = Service(self.root, "bo", *(("-v",) if self.verbose else ()), "boxoffice", "serve", "--port",
                              str(port), "--tick", "0.1",
                              env={**self.env, "QRGATE_OWNERSHIP_RESERVATION": str(self.reservation)})

    def restart_office(self) -> None:
        """SIGKILL the box office and start it again on the same port (the agent and wallets know that URL)."""
        assert self.office is not None
        port = int(self.office.url.rsplit(":", 1)[1])
        self.office.kill()
        self.office.stop()
        self.restarts += 1
        self.start_office(port)

    def start_agent(self) -> None:
        assert self.office is not None
        self.agent = Service(self.root, "agent", "fake-agent", "serve", "--boxoffice", self.office.url, "--port", "0")

    def kill_agent(self) -> None:
        assert self.agent is not None
        self.agent.kill()
        self.agent.stop()

    def restart_agent(self) -> None:
        """Start the agent again on its port (the wallets know that URL)."""
        assert self.agent is not None and self.office is not None
        port = self.agent.url.rsplit(":", 1)[1]
        self.agent = Service(self.root, "agent", "fake-agent", "serve", "--boxoffice", self.office.url, "--port", port)

    def bounce_agent(self) -> None:
        """SIGKILL the agent and start it again on its port."""
        self.kill_agent()
        self.restart_agent()

    def wallet(self, name: str, patience: float = 0.0) -> OnlineWallet:
        assert self.agent is not None and self.office is not None
        w = OnlineWallet(Wallet.create(str(self.root / f"{name}.db"), name),
                         BoxOfficeClient(self.office.url, patience=patience), AgentClient(self.agent.url))
        w.trust(self.chain)
        for other in self.wallets.values():
            other.wallet.trust(w.wallet.party.identity_block)
            w.wallet.trust(other.wallet.party.identity_block)
        self.wallets[name] = w
        return w

    def pages(self, *names: str) -> dict[str, Service]:
        """Holders made as a person would: `gate wallet new`, `connect` and `identity` in home root/NAME, each
        trusting the others' identities (`gate wallet trust`, one file of them all), then `gate wallet serve`
        for each; name -> its page process, whose `url` is the address it printed (with the session key).
        The holders' commands run side by side (each in its own home)."""
        assert self.office is not None and self.agent is not None
        office, agent = self.office.url, self.agent.url

        def make(name: str) -> None:
            run_gate(self.root, name, "wallet", "new", "--name", name)
            run_gate(self.root, name, "wallet", "connect", office, "--boxoffice-id", self.chain, "--agent", agent)
            run_gate(self.root, name, "wallet", "identity", "--out", f"{name}.id.json")

        def know_the_others(name: str) -> None:
            others = [b for other in names if other != name
                      for b in Message.loads((self.root / f"{other}.id.json").read_text()).blocks]
            (self.root / f"{name}.others.json").write_text(Message(tuple(others)).dumps())
            run_gate(self.root, name, "wallet", "trust", f"{name}.others.json")

        def serve(name: str) -> Service:
            page = Service(self.root, name, "wallet", "serve", "--port", "0")
            self.served.append(page)
            return page

        with ThreadPoolExecutor(len(names)) as pool:
            list(pool.map(make, names))
            if len(names) > 1:
                list(pool.map(know_the_others, names))
            return dict(zip(names, pool.map(serve, names), strict=True))

    def stop(self) -> None:
        for service in (*self.served, self.agent, self.office):
            if service is not None:
                service.stop()


def theatre(tmp_path: Path, *tickets: str, reservation: float = 600.0,
            env: dict[str, str] | None = None, slot: int = 0, verbose: bool = False) -> Iterator[Theatre]:
    """For a `theatre` fixture: a box office with `tickets` listed, and its agent, both serving.

    With `env`, the box office's commands run with it (QRGATE_KEYS_DIR: an issuer key there already,
    QRGATE_SYNC_BROKER: it publishes raised generations to that broker's arbiter); `slot`: seconds per
    code slot of the listings; `verbose`: the box office logs every request (bo.log).
    """
    t = Theatre(tmp_path, reservation, env=dict(env or {}), slot=slot, verbose=verbose)
    if "QRGATE_KEYS_DIR" not in t.env:
        run_gate(tmp_path, "bo", "keys", "new", "--event", EVENT)
    t.chain = run_gate(tmp_path, "bo", "boxoffice", "init", "--name", "Town Hall", env=t.env).stdout.split()[0]
    run_gate(tmp_path, "agent", "fake-agent", "init", "--out", "agent.id.json")
    run_gate(tmp_path, "bo", "boxoffice", "trust-agent", "agent.id.json", env=t.env)
    t.list(*(tickets or ("9f2",)))
    t.start_office()
    t.start_agent()
    try:
        yield t
    finally:
        t.stop()


def wait_for(check: Callable[[], object], timeout: float = 15.0, every: float = 0.05) -> object:
    """Poll `check` until it returns something true; AssertionError after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := check():
            return value
        time.sleep(every)
    raise AssertionError(f"not true after {timeout} s: {check}")



