"""Scale benchmark: the arbiter on PostgreSQL (1, 2, 3 instances) against the SQLite arbiter; failover; a rush; heals.

    python bench/scale.py [--clients 8] [--seconds 5] [--probes 300] [--kills 24] [--gates 100] [--heals 20]
                          [--drops 20] [--long-drops 2] [--only instances|failover|rush|heal|drop ...] [--dir DIR]

Starts its own mosquitto on a free port, real `gate arbiter` processes, and a fresh database on the machine's
PostgreSQL (127.0.0.1:5432, or BENCH_POSTGRES: a URL without a database) for each run, dropped afterwards.

* Durable claims/s with the same lean gate clients as bench/sync.py (8 processes, 4 claims in flight each),
  and claim p50/p99 of one gate (GateSync.claim, one at a time, no other load), for the SQLite arbiter (the
  baseline, measured in the same run) and for 1, 2 and 3 PostgreSQL instances sharing the requests through
  an MQTT v5 shared subscription.  Goal: one PostgreSQL instance at least half the SQLite arbiter's claims/s.
* Failover gap: two instances; one gate keeps claiming while one instance is killed with SIGKILL (and
  started again) --kills times; per kill, the time from the SIGKILL to the gate's next answered claim.
  Goal: p99 within the claim budget (0.3 s): the gate's resend (sync.gateside.session.RESEND_AT) reaches the
  live instance.  Claims that got no answer at all are counted.
* Opening rush: --gates lean gate connections (4 processes, rush_client), each claiming 20 tickets, one claim
  every PACED_S s per gate at a random phase (people arriving: PACED_S is a quarter of a turnstile's pace),
  against one PostgreSQL instance, and the same against the SQLite arbiter (the baseline); p50/p99 of a claim,
  and where a claim's time went: from its sending to the arbiter's answer stamp (after the commit), and from
  the stamp to its receipt.  Goal: p99 under 20 ms on PostgreSQL.  For information, no goal: the same gates
  as a closed loop (each claim sent the moment the last is answered, every gate at once), with the claims/s
  and the mean round trip that rate implies (gates in flight / rate: Little's law): a throughput test.
* Heal: one gate (GateSync, the reconnect waits of a gate's default config) reaches the broker through a TCP
  proxy (bench/_proxy.py) that cuts it off for 1-3 s (its connection dropped, every attempt refused) and
  heals, --heals times; per heal, the time to the gate's first answered claim (a person at the gate every
  5 ms from the heal on), and to the moment it could claim again.  Goal: "within about a second of the
  heal": p99 at most 1.2 s (the longest reconnect wait, 1 s, then the connection and one claim).
* Silent drop: the same gate over a real network path that loses every packet while dropped and closes
  nothing (bench._proxy.SilentLink: a veth pair into a network namespace, the blackhole qdisc; root only,
  else the row says what is missing), --drops of 1-3 s and --long-drops of LONG_DROP_S s, a person at the
  gate every 5 ms throughout; per drop, the time from the heal to the first answered claim, and from the
  drop to the gate deciding offline without waiting.  For information (TCP's own timers are in it), no goal.

--only runs one part (while working on it); the default run prints every part in one table run.

This machine has 2 cores shared by the broker, PostgreSQL, every instance and every client: more instances
cannot show more throughput here (they show that sharing costs little and that failover works).

Exit status: 0 when every goal passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import os
import random
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt
import psycopg

from bench._proxy import CutProxy, SilentLink
from bench._table import pct, table
from bench.sync import BENCH_KEY, ROOT, claim_for, claim_won, free_port, gate_sync, nodelay, start, throughput, wait_for
from gate.config import SyncSection
from gate.keys import KeyStore
from gate.ledger import Ledger
from gate.store import Store
from sync import wire
from sync.gateside.session import GateSync
from sync.link import Broker, RequestProperties
from sync.topics import Topics

SERVER = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
BUDGET_S, RUSH_P99_MS, PG_SHARE_MIN = 0.3, 20.0, 0.5
#: "reconnect within about a second of the heal": the longest reconnect wait of a gate's default config
#: (sync.reconnect_max, 1 s), its connection and subscription, one claim
HEAL_P99_S = 1.2
#: seconds between one gate's claims in the rush: a person every half second at each of 100 gates is 200 claims/s,
#: four times a turnstile's pace (a person every 1-2 s) and more than a venue's doors let through
PACED_S = 0.5
PARTS = ("instances", "failover", "rush", "heal", "drop")
#: a long silent drop: longer than a gate's link takes to give a silent connection up (keepalive 10 s, then
#: 10 s more for the PINGRESP), so it reconnects into the silence and is healed while doing so
LONG_DROP_S = 25.0
GROUP = "arbiters"
RUSH_PROCS, RUSH_CLAIMS = 4, 20


@contextmanager
def database() -> Iterator[str]:
    name = f"qrgate_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Venue:
    """mosquitto and the arbiter processes of one run."""

    def __init__(self, folder: Path, env: dict[str, str], port: int) -> None:
        self.folder, self.env, self.port = folder, env, port
        self.url = f"mqtt://127.0.0.1:{port}"
        self.instances: dict[str, subprocess.Popen[str]] = {}

    def start(self, store: str, name: str = "") -> subprocess.Popen[str]:
        extra = ["--instance", name, "--group", GROUP] if name else []
        proc = start([sys.executable, "-m", "gate.cli", "--home", str(self.folder / "arbiter"), "arbiter",
                      "--broker", self.url, "--store", store, *extra], self.env, "arbiter ready")
        self.instances[name] = proc
        return proc

    def kill(self, name: str) -> None:
        proc = self.instances.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.instances.values():
            proc.terminate()
            proc.wait(10)
        self.instances.clear()


def probe(folder: Path, venue: Venue, n: int) -> list[float]:
    """One gate's claims one at a time, no other load (ms)."""
    sync, store = gate_sync(folder, f"bench-probe-{uuid.uuid4().hex[:6]}", venue.url)
    sync.start()
    if not sync.wait_ready(10):
        raise SystemExit("bench: the arbiter did not answer the probe")
    gate = sync.gate_id
    for i in range(20):
        claim_won(sync, gate, -1 - i)
    out = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        claim_won(sync, gate, i)
        out.append((time.perf_counter_ns() - t0) / 1e6)
    sync.close()
    store.close()
    return out


def measure(folder: Path, venue: Venue, stores: list[tuple[str, str]], args: argparse.Namespace) -> list[object]:
    for where, name in stores:
        venue.start(where, name)
    try:
        ms = probe(folder, venue, args.probes)
        first = next(iter(venue.instances.values()))
        load = throughput(venue.port, args.clients, args.seconds, venue.env, first.pid)
    finally:
        venue.stop_all()
    return [load.per_s, pct(ms, 50), pct(ms, 99), load.claims]


def failover(folder: Path, venue: Venue, url: str, kills: int) -> tuple[list[float], int, int]:
    """(per kill: s from the SIGKILL to the next answered claim, claims unanswered, claims answered)."""
    venue.start(url, "a")
    venue.start(url, "b")
    sync, store = gate_sync(folder, "bench-failover", venue.url)
    sync.start()
    if not sync.wait_ready(10):
        raise SystemExit("bench: the arbiters did not answer")
    answered: list[float] = []
    lost = [0]
    stop = threading.Event()

    def claims() -> None:
        while not stop.is_set():
            claim = claim_for(uuid.uuid4().hex, uuid.uuid4().hex[:12], sync.gate_id, time.time())
            answer = sync.claim(claim, BUDGET_S)
            if answer is None:
                lost[0] += 1
            elif answer.answer != "won":
                raise SystemExit(f"bench: a failover claim got {answer}")
            else:
                answered.append(time.monotonic())
    thread = threading.Thread(target=claims)
    thread.start()
    gaps, rng = [], random.Random(14)
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.2, 0.6))
            victim = rng.choice(sorted(venue.instances))
            killed_at = time.monotonic()
            venue.kill(victim)
            wait_for(lambda t=killed_at: bool(answered) and answered[-1] > t, 5, "a claim answered after a kill")
            gaps.append(next(t for t in reversed(answered) if t > killed_at) - killed_at)
            venue.start(url, victim)
    finally:
        stop.set()
        thread.join()
        sync.close()
        store.close()
        venue.stop_all()
    return gaps, lost[0], len(answered)


def default_gate(folder: Path, gate_id: str, url: str) -> tuple[GateSync, Store]:
    """A gate with the reconnect waits of a gate's default config, online at `url` (else SystemExit)."""
    defaults = SyncSection()
    store = Store.open(folder / f"{gate_id}.db")
    sync = GateSync(Ledger(store), gate_id, Broker.parse(url), Topics(), batch=200,
                    reconnect=(defaults.reconnect_min, defaults.reconnect_max))
    sync.start()
    if not sync.wait_ready(10):
        raise SystemExit(f"bench: the arbiter did not answer {gate_id} at {url}")
    return sync, store


def heals(folder: Path, venue: Venue, url: str, n: int) -> tuple[list[float], list[float]]:
    """(per heal: s from the heal to the gate's first answered claim, s from the heal to its reconnection).

    One PostgreSQL instance; one gate (GateSync, the reconnect waits of a gate's default config) behind a
    CutProxy.  Each round cuts it off (its connection dropped, every attempt refused) for 1-3 s, heals, and
    from the heal on has a person at the gate every 5 ms: claimed online as soon as the gate can claim
    (`should_claim`), decided offline (not timed) until then."""
    venue.start(url, "a")
    logging.getLogger("sync.link").setLevel(logging.ERROR)  # each cut and heal is logged: lines that bury the table
    proxy = CutProxy(venue.port)
    sync, store = default_gate(folder, "bench-heal", proxy.url)
    online, reconnected, rng = [], [], random.Random(14)
    try:
        for i in range(n):
            proxy.cut()
            wait_for(lambda: not sync.can_claim(), 5, "the gate to notice the cut")
            time.sleep(rng.uniform(1.0, 3.0))
            healed = time.monotonic()
            proxy.heal()
            back, answered = first_online_claim(sync, i)
            online.append(answered - healed)
            reconnected.append(back - healed)
    finally:
        sync.close()
        store.close()
        proxy.close()
        venue.stop_all()
    return online, reconnected


def drops(folder: Path, venue: Venue, url: str, n: int, long: int) -> tuple[list[float], list[float], list[float]]:
    """(per short drop: s from the heal to the first answered claim; per long drop: the same; per drop: s from
    the drop to the gate deciding without waiting on the arbiter).

    One PostgreSQL instance; one gate behind a SilentLink: `n` drops of 1-3 s (shorter than the link's
    keepalive: the TCP connection lives through it) then `long` drops of LONG_DROP_S s (the link gives the
    connection up and reconnects into the silence).  A person at the gate every 5 ms throughout: each claim
    waits its budget while the gate still takes the arbiter for reachable."""
    venue.start(url, "a")
    logging.getLogger("sync.link").setLevel(logging.ERROR)
    link = SilentLink(venue.port)
    sync, store = default_gate(folder, "bench-drop", link.url)
    short, lasting, given_up, rng = [], [], [], random.Random(14)
    try:
        for i in range(n + long):
            first_online_claim(sync, -1 - i)  # online before each drop
            seconds = rng.uniform(1.0, 3.0) if i < n else LONG_DROP_S
            link.drop()
            dropped = time.monotonic()
            stopped = 0.0
            while time.monotonic() < dropped + seconds:
                if not sync.should_claim():
                    stopped = stopped or time.monotonic()
                    time.sleep(0.005)
                    continue
                answer = sync.claim(claim_for(uuid.uuid4().hex, f"drop{i}-{uuid.uuid4().hex[:6]}", sync.gate_id,
                                              time.time()), BUDGET_S)
                if answer is not None and time.monotonic() > dropped + 0.05:
                    raise SystemExit(f"bench: a claim was answered through a dropped link: {answer}")
            given_up.append((stopped or time.monotonic()) - dropped)
            healed = time.monotonic()
            link.heal()
            _, answered = first_online_claim(sync, i)
            (short if i < n else lasting).append(answered - healed)
    finally:
        sync.close()
        store.close()
        link.close()
        venue.stop_all()
    return short, lasting, given_up


def first_online_claim(sync: GateSync, i: int) -> tuple[float, float]:
    """(monotonic s when the gate could claim again, when a claim of it was answered): a person every 5 ms."""
    deadline, back = time.monotonic() + 20, 0.0
    while time.monotonic() < deadline:
        if not sync.should_claim():
            time.sleep(0.005)
            continue
        back = back or time.monotonic()
        answer = sync.claim(claim_for(uuid.uuid4().hex, f"heal{i}-{uuid.uuid4().hex[:6]}", sync.gate_id,
                                      time.time()), BUDGET_S)
        if answer is not None and answer.answer != "won":
            raise SystemExit(f"bench: a claim after a heal got {answer}")
        if answer is not None:
            return back, time.monotonic()
    raise SystemExit("bench: no claim answered within 20 s of a heal")


class RushGate:
    """One lean gate connection of a rush client: subscribed to the stream (QoS 1) and its replies, as gates are;
    its paho client is driven by the process's one loop (rush_client), not by a network thread of its own."""

    def __init__(self, n: int, port: int, claims: int, phase: float, topics: Topics) -> None:
        gate, self.n = f"rush-{n}", n
        self.request, self.reply = topics.request("claim", gate), topics.reply(gate)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{gate}-{os.getpid()}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_socket_open = nodelay
        self.client.on_message = self._message
        self.client.on_subscribe = lambda *_a: setattr(self, "subscribed", True)
        self.subscribed = False
        self.stream, self.streamed = topics.stream, 0  # stream messages received
        self.phase, self.claims, self.left, self.sent, self.wall = phase, claims, claims, 0.0, 0.0
        self.scans = [uuid.uuid4().hex for _ in range(claims)]  # signed before the rush: a gate was shown its codes
        self.payloads = [wire.encode(wire.request("claims", [claim_for(scan, scan[:12], gate, time.time())]))
                         for scan in self.scans]
        self.answered: Callable[[RushGate, bytes], None] = lambda _g, _p: None
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(topics.stream, 1), (self.reply, 1)])

    def send(self) -> None:
        k = self.claims - self.left
        self.sent, self.wall = time.perf_counter(), time.time()
        self.client.publish(self.request, self.payloads[k], qos=0,
                            properties=RequestProperties(self.reply, self.scans[k].encode()))

    def _message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.reply:
            self.left -= 1
            self.answered(self, bytes(msg.payload))
        elif msg.topic == self.stream:  # it got paho's full work: read, parsed, PUBACKed, called back
            self.streamed += 1


def rush_client(port: int, first: int, count: int, claims: int, pace: float = 0.0) -> None:
    """`count` lean gate connections (RushGate); on "go" each claims `claims` tickets one after the other (pace 0:
    every gate at once, each claim as soon as the last is answered; else one claim every `pace` s per gate, each
    gate at a random phase: people arriving); prints every claim's round trip (ms), the s from "go" to the last
    answer, and each claim split at the arbiter's answer stamp, as JSON.

    One thread drives every connection (a selector over their sockets, paho's loop_read/loop_write/loop_misc)
    and sends each paced claim when it is due: 25 paho network threads in one process (and a timer thread per
    claim) contended for one GIL, a cost no real gate has (each runs on a machine of its own)."""
    topics, rng = Topics(), random.Random(first)
    gates = [RushGate(n, port, claims, rng.uniform(0, pace), topics) for n in range(first, first + count)]
    selector = selectors.DefaultSelector()
    for gate in gates:
        sock = gate.client.socket()
        assert sock is not None, "connected"
        selector.register(sock, selectors.EVENT_READ, gate)
    due: list[tuple[float, int]] = []  # (perf_counter s, gate index): paced claims to send
    latencies: list[float] = []
    walls: list[tuple[float, float]] = []  # (wall clock s when sent, when received): against the answer's own stamp
    replies: list[bytes] = []  # looked at after the rush: decoding them is no part of a claim's round trip
    began = 0.0

    def answered(gate: RushGate, payload: bytes) -> None:
        latencies.append((time.perf_counter() - gate.sent) * 1000)
        walls.append((gate.wall, time.time()))
        replies.append(payload)
        if gate.left and pace:
            heapq.heappush(due, (began + gate.phase + (claims - gate.left) * pace, gate.n - first))
        elif gate.left:
            gate.send()

    def loop(until: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = misc = time.perf_counter()
        deadline += seconds
        while not until():
            now = time.perf_counter()
            while due and due[0][0] <= now:
                gates[heapq.heappop(due)[1]].send()
            if now > deadline:
                raise SystemExit(f"bench: {what}")
            for key, _events in selector.select(min(due[0][0] - now, 0.05) if due else 0.05):
                key.data.client.loop_read()
            for gate in gates:
                if gate.client.want_write():
                    gate.client.loop_write()
            if now - misc > 1.0:  # keepalive and retries, as paho's own loop does
                misc = now
                for gate in gates:
                    gate.client.loop_misc()

    loop(lambda: all(g.subscribed for g in gates), 20, "a rush client could not connect")
    for gate in gates:
        gate.answered = answered
    print("ready", flush=True)
    sys.stdin.readline()
    began = time.perf_counter()
    for i, gate in enumerate(gates):
        if pace:
            heapq.heappush(due, (began + gate.phase, i))
        else:
            gate.send()  # its first claim: every gate at once
    loop(lambda: not any(g.left for g in gates), 60, "rush claims went unanswered")
    span = time.perf_counter() - began
    decoded = [wire.decode(payload) for payload in replies]
    answers = [a.answer for d in decoded for a in wire.parse_answers(d)]
    if set(answers) != {"won"}:
        raise SystemExit(f"bench: rush claims answered {sorted(set(answers))}, not all won")
    # the arbiter stamps its answer once the batch committed: sent -> stamp, stamp -> received (one clock)
    split = [((float(d["at"]) - sent) * 1000, (got - float(d["at"])) * 1000)
             for d, (sent, got) in zip(decoded, walls, strict=True)]
    streamed = [g.streamed for g in gates]
    print(json.dumps({"ms": latencies, "span": span, "split": split, "streamed": streamed}), flush=True)
    for gate in gates:
        gate.client.disconnect()
        gate.client.loop_write()


@dataclass
class Rush:
    """One rush's figures: every claim's round trip (ms), the claims answered per second over the whole rush,
    and per claim (ms from its sending to the arbiter's answer stamp, ms from the stamp to its receipt)."""

    ms: list[float]
    per_s: float
    split: list[tuple[float, float]]
    streamed: list[int]  # per gate: the stream messages it received during the rush

    def where(self) -> str:
        to, back = [a for a, _ in self.split], [b for _, b in self.split]
        return (f"sent -> answered p50 {pct(to, 50):.2f} / p99 {pct(to, 99):.2f} ms, answered -> received "
                f"p50 {pct(back, 50):.2f} / p99 {pct(back, 99):.2f} ms")


def rush(venue: Venue, store: str, gates: int, name: str = "a", pace: float = 0.0) -> Rush:
    """The rush of `gates` lean gates (RUSH_PROCS processes of rush_client) on one arbiter; `pace`: see
    rush_client."""
    venue.start(store, name)
    per = gates // RUSH_PROCS
    procs = [start([sys.executable, __file__, "--rush", str(venue.port), str(k * per), str(per), str(pace)],
                   venue.env, "ready") for k in range(RUSH_PROCS)]
    try:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        out: list[float] = []
        split: list[tuple[float, float]] = []
        streamed: list[int] = []
        span = 0.0
        for proc in procs:
            stdout, _ = proc.communicate(timeout=120)
            got = json.loads(stdout.splitlines()[-1])
            out, span = out + got["ms"], max(span, got["span"])
            split += [(a, b) for a, b in got["split"]]
            streamed += got["streamed"]
        return Rush(out, len(out) / span, split, streamed)
    finally:
        venue.stop_all()


def rush_value(r: Rush, gates: int) -> str:
    """A closed loop's claims, their rate, and the mean round trip that rate implies with every gate waiting on
    one claim all the while (Little's law: gates / rate): a closed loop's latency is its concurrency over its
    throughput, so this is what the arbiter's pace alone makes of it."""
    return (f"{len(r.ms):,} claims, {r.per_s:,.0f}/s; mean {statistics.fmean(r.ms):.1f} ms, "
            f"{gates} in flight / {r.per_s:,.0f}/s = {gates / r.per_s * 1000:.1f} ms")


def paced_value(r: Rush) -> str:
    return (f"{len(r.ms):,} claims, {r.per_s:,.0f}/s offered and answered; {r.where()}; "
            f"{statistics.fmean(r.streamed):,.0f} stream messages to each gate")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=8, help="lean gate clients of the throughput runs")
    p.add_argument("--seconds", type=float, default=5.0, help="length of each throughput run")
    p.add_argument("--probes", type=int, default=300, help="claims timed one at a time per configuration")
    p.add_argument("--kills", type=int, default=24, help="SIGKILLs of an instance in the failover run")
    p.add_argument("--gates", type=int, default=100, help="gates in the opening rush")
    p.add_argument("--heals", type=int, default=20, help="cuts and heals of a gate's network in the heal run")
    p.add_argument("--drops", type=int, default=20, help="short silent drops of a gate's network in the drop run")
    p.add_argument("--long-drops", type=int, default=2, help=f"silent drops of {LONG_DROP_S:.0f} s in the drop run")
    p.add_argument("--only", action="append", choices=PARTS,
                   help="run only this part (repeatable; default: all of them, in one table run)")
    p.add_argument("--dir", type=Path, help="where the files go (default: a temporary folder here)")
    p.add_argument("--rush", nargs=4, type=float, metavar=("PORT", "FIRST", "COUNT", "PACE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rush:
        port, first, count, pace = args.rush
        rush_client(int(port), int(first), int(count), RUSH_CLAIMS, pace)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.dir or Path.cwd()))
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"
                    f"max_queued_messages 100000\nmax_connections -1\nlog_dest file {folder}/mosquitto.log\n")
    broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("QRGATE_")}, "PYTHONPATH": str(ROOT)}
    KeyStore(folder / "arbiter" / "keys").add_issuer_key(BENCH_KEY)  # the arbiter verifies each claim's code
    venue = Venue(folder, env, port)
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 10, "mosquitto")
        return run(args, folder, venue)
    finally:
        venue.stop_all()
        broker.terminate()
        broker.wait(10)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, folder: Path, venue: Venue) -> int:
    t_start = time.monotonic()
    parts = set(args.only or PARTS)
    print(f"scale bench: mosquitto on {venue.url}, PostgreSQL at {SERVER}, files in {folder}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the run")
    rows: list[list[object]] = []
    if "instances" in parts:
        rows.append(["SQLite arbiter (baseline)", *measure(folder, venue, [(str(folder / "arbiter.db"), "")], args)])
        for n in (1, 2, 3):
            with database() as url:
                rows.append([f"PostgreSQL, {n} instance{'s' if n > 1 else ''}",
                             *measure(folder, venue, [(url, name) for name in "abc"[:n]], args)])
    measures: list[list[str]] = []
    goals: list[tuple[bool, str]] = []
    if "failover" in parts:
        with database() as url:
            gaps, lost, answered = failover(folder, venue, url, args.kills)
        measures.append([f"failover gap, SIGKILL -> next answered claim ({len(gaps)} kills of 2 instances)",
                         f"{pct(gaps, 50) * 1000:.1f}", f"{pct(gaps, 99) * 1000:.1f}",
                         f"{lost} of {lost + answered:,} claims unanswered within {BUDGET_S} s"])
        goals.append((pct(gaps, 99) <= BUDGET_S, f"failover gap p99 {pct(gaps, 99) * 1000:.0f} ms <= the claim budget "
                                                 f"{BUDGET_S * 1000:.0f} ms"))
    if "rush" in parts:
        with database() as url:
            paced = rush(venue, url, args.gates, pace=PACED_S)
        paced_sqlite = rush(venue, str(folder / "paced.db"), args.gates, "", pace=PACED_S)
        with database() as url:
            closed = rush(venue, url, args.gates)
        closed_sqlite = rush(venue, str(folder / "rush.db"), args.gates, "")
        measures += [
            [f"opening rush: {args.gates} gates x {RUSH_CLAIMS} claims, one every {PACED_S} s per gate (a random "
             "phase), 1 PostgreSQL instance", f"{pct(paced.ms, 50):.2f}", f"{pct(paced.ms, 99):.2f}",
             paced_value(paced)],
            ["  the same rush on the SQLite arbiter (baseline)", f"{pct(paced_sqlite.ms, 50):.2f}",
             f"{pct(paced_sqlite.ms, 99):.2f}", paced_value(paced_sqlite)],
            ["  for information: the same gates as a closed loop (each claim the moment the last is answered), "
             "1 PostgreSQL instance", f"{pct(closed.ms, 50):.2f}", f"{pct(closed.ms, 99):.2f}",
             rush_value(closed, args.gates)],
            ["  for information: the closed loop on the SQLite arbiter", f"{pct(closed_sqlite.ms, 50):.2f}",
             f"{pct(closed_sqlite.ms, 99):.2f}", rush_value(closed_sqlite, args.gates)]]
        goals.append((pct(paced.ms, 99) < RUSH_P99_MS, f"rush claim p99 {pct(paced.ms, 99):.2f} ms < {RUSH_P99_MS} ms "
                                                       f"({args.gates} gates, a claim every {PACED_S} s each, "
                                                       "PostgreSQL)"))
    if "heal" in parts:
        with database() as url:
            online, back = heals(folder, venue, url, args.heals)
        measures += [
            [f"heal -> the gate's first online claim ({len(online)} heals after 1-3 s cut off, 1 PostgreSQL "
             "instance)", f"{pct(online, 50) * 1000:.0f}", f"{pct(online, 99) * 1000:.0f}",
             f"longest {max(online) * 1000:.0f} ms"],
            ["  of which: heal -> the gate can claim again (reconnected, subscribed)",
             f"{pct(back, 50) * 1000:.0f}", f"{pct(back, 99) * 1000:.0f}", f"longest {max(back) * 1000:.0f} ms"]]
        goals.append((pct(online, 99) <= HEAL_P99_S, f"heal -> first online claim p99 {pct(online, 99) * 1000:.0f} ms "
                                                     f"<= {HEAL_P99_S * 1000:.0f} ms"))
    if "drop" in parts:
        missing = SilentLink.unavailable()
        if missing:
            measures.append(["silent drop: not measured", "", "", missing])
        else:
            with database() as url:
                short, lasting, given_up = drops(folder, venue, url, args.drops, args.long_drops)
            measures += [
                [f"silent drop: heal -> the gate's first online claim ({len(short)} drops of 1-3 s, every packet "
                 "lost, nothing closed)", f"{pct(short, 50) * 1000:.0f}", f"{pct(short, 99) * 1000:.0f}",
                 f"longest {max(short) * 1000:.0f} ms"],
                [f"  the same after {len(lasting)} drops of {LONG_DROP_S:.0f} s (the link gave the connection up)",
                 f"{pct(lasting, 50) * 1000:.0f}" if lasting else "", f"{pct(lasting, 99) * 1000:.0f}" if lasting else "",
                 f"longest {max(lasting) * 1000:.0f} ms" if lasting else "none run"],
                ["  drop -> the gate stops waiting on the arbiter (decides offline at once)",
                 f"{pct(given_up, 50) * 1000:.0f}", f"{pct(given_up, 99) * 1000:.0f}",
                 f"longest {max(given_up) * 1000:.0f} ms"]]
    if rows:
        print(table(["configuration", "claims/s", "claim p50 ms", "claim p99 ms", "claims"],
                    [[name, f"{per_s:,.0f}", f"{p50:.2f}", f"{p99:.2f}", f"{n:,}"] for name, per_s, p50, p99, n in rows]))
        sqlite_per_s, pg_per_s = float(rows[0][1]), float(rows[1][1])  # type: ignore[arg-type]
        goals.insert(0, (pg_per_s >= PG_SHARE_MIN * sqlite_per_s, f"one PostgreSQL instance {pg_per_s:,.0f} claims/s "
                                                                   f">= {PG_SHARE_MIN}x SQLite's {sqlite_per_s:,.0f}/s"))
    if measures:
        print()
        print(table(["measure", "p50 ms", "p99 ms", "value"], measures))
    print("\ngoals:")
    for ok, text in goals:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    print(f"\n({time.monotonic() - t_start:.0f} s.  Two cores carry the broker, PostgreSQL, every instance and every "
          "client: more instances do not add throughput here; they add the failover above.)")
    return 0 if all(ok for ok, _ in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
