"""Network paths to the broker that a bench can break and heal: a loud cut, and a silent drop.

`CutProxy`, the partition the tests make too (tests/sync_fixtures.py imports it as TcpProxy): a gate behind
it sees its connection drop and every reconnect attempt refused until `heal`, as when a venue switch or a
broker restart cuts it off, and nothing else on the broker is disturbed.  Its `silence` is the quiet
kind: every connection stays open and every new one is accepted, but nothing passes until `heal` (the
model of a broker machine that lost power, without TCP's own backoff after the heal).

`SilentLink`, a pulled cable or a dead Wi-Fi cell: every packet between the gate and the broker vanishes,
nothing is closed or refused, and TCP finds out only by its own timers (retransmission, keepalive).  It is a
real network path (a veth pair into a network namespace of its own, and Linux's ``blackhole`` queueing
discipline on both ends while dropped), so TCP's retransmission backoff after a heal is the kernel's own,
not a model of it.  It needs root, iproute2 and the blackhole qdisc; `SilentLink.unavailable` says what is
missing.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path


class CutProxy:
    """host:port -> target_host:target (both 127.0.0.1 unless told); `cut`, `silence`, `heal`, `close`.  Thread-safe."""

    def __init__(self, target: int, *, host: str = "127.0.0.1", target_host: str = "127.0.0.1") -> None:
        self.target, self.host, self.target_host = target, host, target_host
        self.listener = socket.create_server((host, 0))
        self.port = int(self.listener.getsockname()[1])
        self._open = threading.Event()
        self._open.set()
        self._flowing = threading.Event()  # clear while silenced
        self._flowing.set()
        self._closed = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="bench-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def cut(self) -> None:
        with self._lock:
            self._open.clear()
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):  # already closed by its peer
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def silence(self) -> None:
        self._flowing.clear()

    def heal(self) -> None:
        self._open.set()
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._flowing.set()  # the held attempts see `_closed` and end
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()  # refused: the gate's attempt fails at once and it waits for its next one
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._flowing.wait()  # silenced: the attempt is held, unanswered, until the heal
        try:
            if self._closed:
                raise OSError("closed")
            upstream = socket.create_connection((self.target_host, self.target))
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if not self._open.is_set():  # cut while this one was being connected
                client.close()
                upstream.close()
                return
            self._conns += [client, upstream]
        self._pump(client, upstream)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                if not self._flowing.is_set():
                    self._flowing.wait(0.5)
                    continue
                readable, _, _ = select.select([a, b], [], [], 0.5)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):  # ValueError: `cut` closed a socket while select waited on it
            return
        finally:
            for s in (a, b):
                s.close()


class SilentLink:
    """gate -> `url` (in a namespace, over a veth pair) -> the broker on 127.0.0.1:`target`; `drop`, `heal`, `close`.

    The path crosses the veth pair both ways: the gate (this process) connects to a forwarder inside the
    namespace, which connects back to a forwarder on the veth's host side, which reaches the broker on
    loopback.  `drop` blackholes both ends of the pair, so both legs of the gate's session go silent (the
    broker's side of it too, as on a real network)."""

    def __init__(self, target: int) -> None:
        n = os.getpid() % 250 + 2
        self.ns, self.outer_dev, self.inner_dev = f"qgb{os.getpid()}", f"qgb{os.getpid()}o", f"qgb{os.getpid()}i"
        self.outer_ip, self.inner_ip = f"10.213.{n}.1", f"10.213.{n}.2"
        self._ip("netns", "add", self.ns)
        self._forwarder: subprocess.Popen[str] | None = None
        self._outer: CutProxy | None = None
        try:
            self._ip("link", "add", self.outer_dev, "type", "veth", "peer", "name", self.inner_dev)
            self._ip("link", "set", self.inner_dev, "netns", self.ns)
            self._ip("addr", "add", f"{self.outer_ip}/30", "dev", self.outer_dev)
            self._ip("link", "set", self.outer_dev, "up")
            self._ip("-n", self.ns, "addr", "add", f"{self.inner_ip}/30", "dev", self.inner_dev)
            self._ip("-n", self.ns, "link", "set", self.inner_dev, "up")
            self._outer = CutProxy(target, host=self.outer_ip)
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
            self._forwarder = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, sys.executable, "-m", "bench._proxy", self.inner_ip, self.outer_ip,
                 str(self._outer.port)], stdout=subprocess.PIPE, text=True, env=env)
            assert self._forwarder.stdout is not None
            self.port = int(self._forwarder.stdout.readline())
        except BaseException:
            self.close()
            raise

    @staticmethod
    def unavailable() -> str:
        """Why a SilentLink cannot be made here ('' when it can)."""
        if os.geteuid() != 0:
            return "it needs root (network namespaces)"
        if not (shutil.which("ip") and shutil.which("tc")):
            return "it needs iproute2 (ip, tc)"
        try:
            link = SilentLink(1)
        except (OSError, subprocess.CalledProcessError, ValueError) as exc:
            return f"a network namespace could not be made ({exc})"
        try:
            link.drop()
            link.heal()
        except subprocess.CalledProcessError:
            return "this kernel has no blackhole qdisc"
        finally:
            link.close()
        return ""

    @property
    def url(self) -> str:
        return f"mqtt://{self.inner_ip}:{self.port}"

    def drop(self) -> None:
        subprocess.run(["tc", "qdisc", "replace", "dev", self.outer_dev, "root", "blackhole"], check=True)
        subprocess.run(["tc", "-n", self.ns, "qdisc", "replace", "dev", self.inner_dev, "root", "blackhole"],
                       check=True)

    def heal(self) -> None:
        subprocess.run(["tc", "qdisc", "del", "dev", self.outer_dev, "root"], check=True)
        subprocess.run(["tc", "-n", self.ns, "qdisc", "del", "dev", self.inner_dev, "root"], check=True)

    def close(self) -> None:
        if self._forwarder is not None:
            self._forwarder.kill()
            self._forwarder.wait(10)
        if self._outer is not None:
            self._outer.close()
        subprocess.run(["ip", "netns", "del", self.ns], check=False, stderr=subprocess.DEVNULL)  # takes the veth pair
        subprocess.run(["ip", "link", "del", self.outer_dev], check=False, stderr=subprocess.DEVNULL)

    @staticmethod
    def _ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, stderr=subprocess.PIPE, text=True)


if __name__ == "__main__":  # python -m bench._proxy HOST TARGET_HOST TARGET_PORT: forwards until killed (SilentLink)
    import sys
    import time

    proxy = CutProxy(int(sys.argv[3]), host=sys.argv[1], target_host=sys.argv[2])
    print(proxy.port, flush=True)
    while True:
        time.sleep(3600)
