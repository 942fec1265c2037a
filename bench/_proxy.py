"""A TCP proxy to the broker that a bench can cut (drop every connection and refuse new ones) and heal.

The partition the tests make too (tests/sync_fixtures.py imports it as TcpProxy): a gate behind it
sees its connection drop and every reconnect attempt refused until `heal`, as when a venue switch or a
broker restart cuts it off, and nothing else on the broker is disturbed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class CutProxy:
    """127.0.0.1:port -> 127.0.0.1:target; `cut`, `heal`, `close`.  Thread-safe."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self._open = threading.Event()
        self._open.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="bench-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def cut(self) -> None:
        with self._lock:
            self._open.clear()
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):  # already closed by its peer
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def heal(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.cut()
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
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if not self._open.is_set():  # cut while this one was being connected
                    client.close()
                    upstream.close()
                    continue
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
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
