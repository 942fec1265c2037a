"""Connections in, whole requests out: a listener that gives no thread to a client that has not finished asking.

What a caller may rely on:

* One selector thread accepts, completes the TLS handshake and reads the request line, the headers and
  the body, all non-blocking; only a complete request reaches a thread.  So 150 idle, half-sent requests
  hold 150 sockets and no thread, and an honest request next to them is answered at once.
* Limits: at most `max_pending` connections being read (past it the oldest is closed), `per_address` of
  them from one address (past it that address's oldest is closed: newcomers are never starved), a whole
  request within `deadline` s of the connection, headers of at most `max_head` bytes (else 431), a body
  read only up to `max_body` bytes (a longer one is handed on as it is, for the handler to refuse).
* Complete requests run on a pool of `workers` threads.  A request whose path starts with one of
  `stream_paths` (the live stream) runs in a thread of its own, at most `max_streams` at once (more: 503).
* The handed-on socket is blocking with a `write_timeout` s timeout, so a client that stops reading
  frees its thread within that time.  `serve` must not raise; the socket is closed after it returns.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from gate.exc import CannotListen

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    workers: int = 8
    max_streams: int = 32
    max_pending: int = 512
    per_address: int = 64
    deadline: float = 10.0
    max_head: int = 16384
    max_body: int = 8192
    write_timeout: float = 10.0


@dataclass
class Request:
    """A request read whole: its socket, the peer's address and every byte it sent."""

    sock: socket.socket
    address: tuple[str, int]
    data: bytes


@dataclass(eq=False)
class _Pending:
    sock: socket.socket
    address: tuple[str, int]
    started: float
    handshaking: bool
    buf: bytearray = field(default_factory=bytearray)


class Intake:
    """`serve_forever()` in a thread; `shutdown()` from another; then `server_close()`."""

    def __init__(self, address: tuple[str, int], serve: Callable[[Request], None], *,
                 tls: ssl.SSLContext | None = None, stream_paths: tuple[str, ...] = (),
                 limits: Limits = Limits(), counters: Callable[[str], None] = lambda _name: None) -> None:
        self.serve, self.tls, self.limits, self.count = serve, tls, limits, counters
        self._streams = tuple(f"GET {p}".encode() for p in stream_paths)
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        try:
            self.socket = socket.create_server(address, family=family, backlog=128)
        except OSError as exc:
            raise CannotListen.because(address[0], address[1], exc) from None
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.socket, selectors.EVENT_READ, None)
        self._pending: OrderedDict[_Pending, None] = OrderedDict()
        self._pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="dashboard-http")
        self._stream_slots = threading.BoundedSemaphore(limits.max_streams)
        self._stop = threading.Event()
        self._stopped = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        try:
            while not self._stop.is_set():
                for key, _mask in self._selector.select(timeout=0.5):
                    if key.data is None:
                        self._accept()
                    else:
                        self._advance(key.data)
                self._expire()
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self._stop.set()
        self._stopped.wait(5)

    def server_close(self) -> None:
        for pending in list(self._pending):
            self._close(pending)
        self._selector.close()
        self.socket.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- the selector thread -----------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, say: count it, keep serving the others
                self.count("accept_errors")
                log.warning("dashboard: accept failed: %s", exc)
                return
            self._make_room(address[0])
            sock.setblocking(False)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            pending = _Pending(sock, address[:2], time.monotonic(), self.tls is not None)
            self._pending[pending] = None
            self._selector.register(sock, selectors.EVENT_READ, pending)

    def _make_room(self, host: str) -> None:
        mine = [p for p in self._pending if p.address[0] == host]
        if len(mine) >= self.limits.per_address:
            self.count("connections_evicted")
            self._close(mine[0])
        if len(self._pending) >= self.limits.max_pending:
            self.count("connections_evicted")
            self._close(next(iter(self._pending)))

    def _advance(self, p: _Pending) -> None:
        try:
            if p.handshaking:
                p.sock.do_handshake()  # type: ignore[attr-defined]
                p.handshaking = False
            while len(p.buf) <= self.limits.max_head + self.limits.max_body:
                chunk = p.sock.recv(65536)
                if not chunk:
                    self._close(p)
                    return
                p.buf += chunk
        except ssl.SSLWantReadError:
            self._selector.modify(p.sock, selectors.EVENT_READ, p)
        except ssl.SSLWantWriteError:
            self._selector.modify(p.sock, selectors.EVENT_WRITE, p)
            return
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # a failed handshake, a reset
            self.count("connections_failed")
            self._close(p)
            return
        self._maybe_dispatch(p)

    def _maybe_dispatch(self, p: _Pending) -> None:
        head_end, sep = _head_end(p.buf)
        if head_end < 0:
            if len(p.buf) > self.limits.max_head:
                self._refuse(p, 431, "Request Header Fields Too Large")
            return
        length = _content_length(bytes(p.buf[:head_end]))
        if length is not None and length <= self.limits.max_body and len(p.buf) < head_end + sep + length:
            return  # the body is still coming
        self._dispatch(p)

    def _dispatch(self, p: _Pending) -> None:
        self._forget(p)
        request = Request(p.sock, p.address, bytes(p.buf))
        try:
            p.sock.setblocking(True)
            p.sock.settimeout(self.limits.write_timeout)
        except OSError:
            p.sock.close()
            return
        if self._streams and request.data.startswith(self._streams):
            if not self._stream_slots.acquire(blocking=False):
                self.count("streams_refused")
                _answer(p.sock, 503, "Service Unavailable")
                p.sock.close()
                return
            threading.Thread(target=self._run, args=(request, True), name="dashboard-stream", daemon=True).start()
        else:
            self._pool.submit(self._run, request, False)

    def _run(self, request: Request, stream: bool) -> None:
        try:
            self.serve(request)
        except Exception:  # a bug in a handler: count it, log it, keep serving the others
            self.count("handler_errors")
            log.exception("dashboard: request failed")
        finally:
            if stream:
                self._stream_slots.release()
            with contextlib.suppress(OSError):
                request.sock.close()

    def _expire(self) -> None:
        limit = time.monotonic() - self.limits.deadline
        while self._pending:
            oldest = next(iter(self._pending))
            if oldest.started > limit:
                return
            self.count("requests_timed_out")
            self._refuse(oldest, 408, "Request Timeout")

    def _refuse(self, p: _Pending, code: int, text: str) -> None:
        if not p.handshaking:
            _answer(p.sock, code, text)
        self._close(p)

    def _forget(self, p: _Pending) -> None:
        self._pending.pop(p, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(p.sock)

    def _close(self, p: _Pending) -> None:
        self._forget(p)
        with contextlib.suppress(OSError):
            p.sock.close()


def _answer(sock: socket.socket, code: int, text: str) -> None:
    """A last word to a client we stop reading (best effort: it may not be listening)."""
    with contextlib.suppress(OSError):
        sock.send(f"HTTP/1.0 {code} {text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())


def _head_end(buf: bytearray) -> tuple[int, int]:
    """Where the headers end and the separator's length ((-1, 0) if not yet)."""
    crlf, lf = buf.find(b"\r\n\r\n"), buf.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    return (lf, 2) if lf >= 0 else (-1, 0)


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() else None
    return 0
