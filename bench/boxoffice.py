"""The box office over HTTP: purchase requests per second and a complete resale, next to hello-world.

    python bench/boxoffice.py [--purchases 300] [--resales 30]

Starts `gate boxoffice serve` and `gate fake-agent serve` as processes on free loopback ports
(as a theatre runs them), then measures, in the same run:

1. ``GET /hello`` of the same server (the HTTP stack's own cost: the baseline);
2. ``POST /purchase`` of prepared purchase requests (verify, compare-and-set, three blocks
   sealed and committed), one client, then four clients at once;
3. a complete resale: the buyer asks, the holder reads its mailbox and invoices, the buyer reads
   its mailbox and pays the agent, the agent notifies the box office, the buyer's mailbox brings the
   ownership block (p50/p99 ms; the mailboxes are polled every 2 ms).
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._table import summary, table, time_each
from gate.ownership.block import Message
from gate.ownership.client import AgentClient, BoxOfficeClient
from gate.ownership.online import OnlineWallet
from gate.ownership.wallet import Wallet

EVENT = "bench"


def gate(home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRGATE_")}
    done = subprocess.run([sys.executable, "-m", "gate.cli", "--home", str(home), *args], capture_output=True,
                          text=True, env=env, check=True)
    return done.stdout


def serve(home: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRGATE_")}
    proc = subprocess.Popen([sys.executable, "-m", "gate.cli", "--home", str(home), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if " at http://" not in line:
        raise SystemExit(f"{args}: did not start: {line!r}")
    return proc, line.rsplit(" at ", 1)[1].strip()


def until(check: Callable[[], object]) -> None:
    end = time.monotonic() + 30
    while not check():
        if time.monotonic() > end:
            raise SystemExit("a resale did not complete in 30 s")
        time.sleep(0.002)


def resale(seller: OnlineWallet, buyer: OnlineWallet) -> None:
    request, _hold = buyer.ask(EVENT, "r1", seller.chain)
    txn = request.blocks[-1].txn
    until(lambda: (seller.sync(), [m for m in seller.requests() if m.blocks[-1].txn == txn])[1])
    seller.sell(next(m for m in seller.requests() if m.blocks[-1].txn == txn), 4200, "EUR")
    until(lambda: (buyer.sync(), [m for m in buyer.bills() if any(b.txn == txn for b in m.blocks)])[1])
    buyer.pay(next(m for m in buyer.bills() if any(b.txn == txn for b in m.blocks)))
    until(lambda: (buyer.sync(), buyer.state(txn))[1] == "owned")


def rate(samples_us: list[float], wall: float | None = None) -> float:
    return len(samples_us) / (wall if wall is not None else sum(samples_us) / 1e6)


def parallel(fn: Callable[[int], object], n: int, clients: int) -> float:
    """Requests per second of `fn(i)` for i < n, spread over `clients` threads."""
    t0 = time.perf_counter()
    threads = [threading.Thread(target=lambda k=k: [fn(i) for i in range(k, n, clients)]) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--purchases", type=int, default=300)
    ap.add_argument("--resales", type=int, default=30)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-boxoffice-"))
    bo, agent_home = root / "bo", root / "agent"
    now = int(time.time())
    gate(bo, "keys", "new", "--event", EVENT)
    gate(bo, "boxoffice", "init", "--name", "bench hall")
    gate(agent_home, "fake-agent", "init", "--out", str(root / "agent.id.json"))
    gate(bo, "boxoffice", "trust-agent", str(root / "agent.id.json"))
    window = ("--valid-from", str(now - 60), "--valid-until", str(now + 86400))
    gate(bo, "boxoffice", "add", "--event", EVENT, "--id", "p", "--count", str(2 * args.purchases), "--price", "25.00",
         *window)
    gate(bo, "boxoffice", "add", "--event", EVENT, "--id", "r1", "--price", "25.00", *window)
    office, office_url = serve(bo, "boxoffice", "serve", "--port", "0")
    agent, agent_url = serve(agent_home, "fake-agent", "serve", "--boxoffice", office_url, "--port", "0")
    try:
        client = BoxOfficeClient(office_url)
        wallets = [OnlineWallet(Wallet.create(str(root / f"{n}.db"), n), BoxOfficeClient(office_url),
                                AgentClient(agent_url)) for n in ("alice", "bob", "buyer")]
        for w in wallets:
            w.trust()
            for other in wallets:
                if other is not w:
                    w.wallet.trust(other.wallet.party.identity_block)
        alice, bob, buyer = wallets
        n = args.purchases
        requests: list[Message] = [buyer.wallet.buy(EVENT, f"p-{i + 1}") for i in range(2 * n)]
        hello = time_each(lambda i: client.get("/hello"), n)
        buys = time_each(lambda i: client.purchase(requests[i]), n)
        hello4 = parallel(lambda i: client.get("/hello"), n, 4)
        buys4 = parallel(lambda i: client.purchase(requests[n + i]), n, 4)
        alice.pay(alice.buy(EVENT, "r1"))
        until(lambda: (alice.sync(), [t for t in alice.wallet.tickets() if t["state"] == "held"])[1])
        pairs = [(alice, bob) if i % 2 == 0 else (bob, alice) for i in range(args.resales)]
        resales = time_each(lambda i: resale(*pairs[i]), args.resales)
    finally:
        for proc in (agent, office):
            proc.terminate()
            proc.wait(10)
    h50, h99, _ = summary(hello)
    b50, b99, _ = summary(buys)
    r50, r99, _ = summary(resales)
    print(table(["measure", "per s", "p50 ms", "p99 ms", "p50 vs hello"], [
        ["GET /hello (baseline), 1 client", rate(hello), h50 / 1000, h99 / 1000, "1.0x"],
        ["POST /purchase, 1 client", rate(buys), b50 / 1000, b99 / 1000, f"{b50 / h50:.1f}x"],
        ["GET /hello, 4 clients", hello4, "", "", ""],
        ["POST /purchase, 4 clients", buys4, "", "", f"{hello4 / buys4:.1f}x fewer/s"],
        [f"complete resale over HTTP (n={args.resales})", rate(resales), r50 / 1000, r99 / 1000,
         f"{r50 / h50:.0f}x"],
    ]))


if __name__ == "__main__":
    main()
