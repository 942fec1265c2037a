"""A small JSON-over-HTTP server for the ownership services (box office, payment agent), standard library only.

What a caller may rely on:

* `JsonServer(routes, host, port)` serves the given `Route`s on a ThreadingHTTPServer; `start()` runs it
  in a thread, `serve_forever()` in the caller's, `stop()` ends it.  Port 0 picks a free port (`url`).
* Every request is checked before a route sees it: the ``Host`` header must name this server (its
  address, ``localhost`` or ``127.0.0.1`` with its port; else 421, a DNS-rebinding guard), a body is at
  most `max_body` bytes (else 413) and must be JSON where a route reads it (else 400).
* A route returns ``(status, JSON value)``.  A ChainError becomes ``{"error": code, "message": why}``
  with a status by its code (`STATUS`); a Refused carrying blocks written anyway adds ``"reply"``.
  Any other exception is logged, counted (`errors`) and answered 500 ``internal``: never a traceback
  to the client.  Request bodies are never logged (they may hold what only the parties may read).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from gate.exc import CannotListen
from gate.ownership.block import Message
from gate.ownership.exc import ChainError, MalformedBlock, Refused

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
STATUS = {"malformed": 400, "not_for_me": 400, "unknown_chain": 404, "unknown_ticket": 404, "unknown_deal": 404,
          "forged_identity": 403, "bad_backstep": 403, "bad_seal": 403, "replayed": 403, "wrong_chain": 403,
          "bad_signature": 403, "store_fault": 503, "unreachable": 502, "mailbox_full": 429}
REFUSED_STATUS = 409


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str]  # from the route's pattern
    query: dict[str, str]
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedBlock(f"the body is not JSON: {exc}") from None

    def message(self) -> Message:
        return Message.loads(self.body)

    def number(self, key: str, default: int = 0) -> int:
        text = self.query.get(key, str(default))
        if not text.isdigit():
            raise MalformedBlock(f"{key!r} must be a non-negative integer, not {text!r}")
        return int(text)


@dataclass(frozen=True)
class Raw:
    """A reply body that is not JSON: a page."""

    content_type: str
    data: bytes


Reply = tuple[int, Any]
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline';"
                                           " img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
                "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True)
class Route:
    """``GET /tickets/{event}/{ticket_id}``: the method, the OpenAPI-style path and the handler."""

    method: str
    path: str
    handler: Callable[[Request], Reply]
    pattern: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[A-Za-z0-9._~%-]{1,192})", self.path)
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))


def error_reply(exc: ChainError) -> Reply:
    code = getattr(exc, "code", "chain_error")
    body: dict[str, Any] = {"error": code, "message": str(exc)}
    if isinstance(exc, Refused) and isinstance(exc.reply, Message) and exc.reply.blocks:
        body["reply"] = exc.reply.to_json()
    return STATUS.get(code, REFUSED_STATUS), body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default of 5 resets connections when a crowd arrives at once


class JsonServer:
    """The HTTP server of one service; see the module docstring for what every route can rely on."""

    def __init__(self, routes: list[Route], *, host: str = "127.0.0.1", port: int = 0, name: str = "service",
                 max_body: int = MAX_BODY) -> None:
        self.table = routes
        self.name = name
        self.max_body = max_body
        self.errors = 0
        try:
            self.server = _Server((host, port), self._handler())
        except OSError as exc:
            raise CannotListen.because(host, port, exc) from None
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """Where to reach it (a subclass may add what a visitor needs, such as a session key)."""
        return self.origin

    def hosts(self) -> set[str]:
        host, port = self.server.server_address[:2]
        return {f"{name}:{port}" for name in (str(host), "localhost", "127.0.0.1")}

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """The answer to one request (everything but the socket); `headers` with lower-case names."""
        host = headers.get("host", "")
        if host not in self.hosts():
            return 421, {"error": "wrong_host", "message": f"this server does not answer for host {host!r}"}
        url = urlsplit(target)
        allowed = [r for r in self.table if r.pattern.match(url.path)]
        route = next((r for r in allowed if r.method == method), None)
        if route is None:
            return (405, {"error": "method_not_allowed", "message": f"{method} {url.path}"}) if allowed else \
                (404, {"error": "not_found", "message": f"no route {url.path}"})
        match = route.pattern.match(url.path)
        assert match is not None
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            return route.handler(Request(method, url.path, params, query, body, headers))
        except ChainError as exc:
            return error_reply(exc)
        except Exception:  # a bug: count it, log it, answer without a traceback
            self.errors += 1
            log.exception("%s: %s %s failed", self.name, method, route.path)
            return 500, {"error": "internal", "message": "the server failed on this request (it is logged)"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = self.headers.get("Content-Length", "0")
                if not length.isdigit() or int(length) > service.max_body:
                    self._send(413, {"error": "too_large", "message": f"a body is at most {service.max_body} bytes"})
                    self.close_connection = True
                    return
                body = self.rfile.read(int(length))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer = service.dispatch(method, self.path, headers, body)
                self._send(status, answer)

            def _send(self, status: int, body: Any) -> None:
                raw = body if isinstance(body, Raw) else Raw("application/json", json.dumps(body).encode())
                data = raw.data
                self.send_response(status)
                self.send_header("Content-Type", raw.content_type)
                for name, value in (PAGE_HEADERS.items() if isinstance(body, Raw) else ()):
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                log.debug(f"{service.name}: " + format, *args)

        return Handler


class WorkingServer(JsonServer):
    """A JsonServer with one worker thread that calls `work()` every `every` seconds (sooner after `wake()`)
    until `stop()`.  A subclass sets what its routes need, then calls this `__init__`."""

    def __init__(self, *, name: str, host: str, port: int, every: float) -> None:
        super().__init__(self.routes(), host=host, port=port, name=name)
        self.every = every
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._worker = threading.Thread(target=self._run, name=f"{name}-worker", daemon=True)

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def work(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> Self:
        super().start()
        self._worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        super().stop()
        self._worker.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.work()
            self._wake.wait(self.every)
