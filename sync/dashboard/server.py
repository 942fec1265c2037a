"""The dashboard's web server: the page, its live updates (server-sent events) and the admin actions.

Standard library only (ThreadingHTTPServer); the page is static files from
sync/dashboard/static/ with no outside assets.  Routes:

``GET /``                      the page
``GET /static/app.js|app.css`` its script and style
``GET /events``                server-sent events: ``state`` (everything the page shows; the first one also
                               holds the live ``feed``), ``scan`` (one decision, the moment it arrives), ``ping``
``GET /api/state``             the same state (with the feed) as JSON
``GET /api/ticket?ticket=T[&event=E]``
                               ``{"ticket", "event", "rows": [...]}``: one ticket's history across gates
``POST /api/revoke``           ``{"password", "admin", "event", "ticket", "reason"}`` (event empty: every event)
``POST /api/override``         ``{"password", "admin", "action": "admit"|"unredeem", "event", "ticket", "reason"}``

The admin actions need the admin password (``dashboard.admin_password_file``),
compared in constant time; a wrong one waits FAIL_DELAY s and answers 401.
Without a password file the actions answer 403.  Answers are JSON
``{"ok", "answer", "detail", "seq"}``: 200 when the arbiter did it, 409 when it
answered otherwise, 503 when the broker or the arbiter cannot be reached, 400
for a bad request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sync.dashboard.history import HistoryError
from sync.dashboard.model import Model
from sync.dashboard.service import ActionResult, DashboardService
from sync.exc import SyncError

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
FILES = {"/": ("index.html", "text/html; charset=utf-8"), "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/static/app.css": ("app.css", "text/css; charset=utf-8")}
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                      "frame-ancestors 'none'; form-action 'self'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
PING_EVERY = 5.0
FAIL_DELAY = 1.0
MAX_BODY = 8192
MAX_FIELD = 200
CLIENT_QUEUE = 2000


class Hub:
    """Fans pushed events out to every open page; a page that cannot keep up is dropped (it reconnects)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: set[queue.Queue[bytes | None]] = set()
        self.dropped = 0

    def subscribe(self) -> queue.Queue[bytes | None]:
        q: queue.Queue[bytes | None] = queue.Queue(CLIENT_QUEUE)
        with self._lock:
            self._clients.add(q)
        return q

    def unsubscribe(self, q: queue.Queue[bytes | None]) -> None:
        with self._lock:
            self._clients.discard(q)

    def publish(self, event: str, data: Any) -> None:
        chunk = sse(event, data)
        with self._lock:
            clients = list(self._clients)
        for q in clients:
            try:
                q.put_nowait(chunk)
            except queue.Full:
                self.dropped += 1
                self.unsubscribe(q)
                with q.mutex:
                    q.queue.clear()
                q.put_nowait(None)  # its handler ends the stream; the page's EventSource reconnects

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients), set()
        for q in clients:
            q.put(None)


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class AdminPassword:
    """The admin credential for actions; None: actions are disabled."""

    def __init__(self, secret: str | None) -> None:
        self._digest = hashlib.sha256(secret.encode()).digest() if secret else None

    @classmethod
    def load(cls, path: Path | None) -> AdminPassword:
        if path is None:
            return cls(None)
        try:
            secret = path.read_text().strip()
        except OSError as exc:
            raise SyncError(f"{path}: cannot read the admin password (dashboard.admin_password_file): "
                            f"{exc.strerror or exc}") from None
        if not secret:
            raise SyncError(f"{path}: the admin password file is empty (dashboard.admin_password_file)")
        return cls(secret)

    @property
    def enabled(self) -> bool:
        return self._digest is not None

    def check(self, given: object) -> bool:
        """Constant time in the password's content and length (both sides are hashed first)."""
        if self._digest is None or not isinstance(given, str):
            return False
        return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), self._digest)


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], service: DashboardService, model: Model, hub: Hub,
                 password: AdminPassword) -> None:
        self.service = service
        self.model = model
        self.hub = hub
        self.password = password
        self.pages = {route: ((STATIC / name).read_bytes(), kind) for route, (name, kind) in FILES.items()}
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        return f"http://{host if host not in ('0.0.0.0', '') else '127.0.0.1'}:{port}/"

    def state(self) -> dict[str, Any]:
        return self.model.snapshot(time.time(), feed=True, counters=self.service.counters.snapshot())


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "qrgate-dashboard"
    #: events are small writes in a row: Nagle's algorithm would hold each back for the previous one's ACK
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    # -- GET ----------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        try:
            if url.path in self.server.pages:
                body, kind = self.server.pages[url.path]
                self._send(200, body, kind)
            elif url.path == "/events":
                self._events()
            elif url.path == "/api/state":
                self._json(200, self.server.state())
            elif url.path == "/api/ticket":
                self._ticket(parse_qs(url.query))
            else:
                self._json(404, {"error": "not found"})
        except HistoryError as exc:
            log.error("dashboard history: %s", exc)
            self._json(500, {"error": str(exc)})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away

    def _ticket(self, query: dict[str, list[str]]) -> None:
        ticket = (query.get("ticket") or [""])[0].strip()
        event = (query.get("event") or [""])[0].strip() or None
        if not ticket or len(ticket) > MAX_FIELD:
            self._json(400, {"error": "give ?ticket=ID (and optionally &event=E)"})
            return
        self._json(200, {"ticket": ticket, "event": event, "rows": self.server.service.history.ticket(ticket, event)})

    def _events(self) -> None:
        q = self.server.hub.subscribe()  # before the first state: nothing can fall between the two
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("X-Accel-Buffering", "no")
            for name, value in HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(b"retry: 1000\n\n" + sse("state", self.server.state()))
            self.wfile.flush()
            while True:
                try:
                    chunk = q.get(timeout=PING_EVERY)
                except queue.Empty:
                    chunk = sse("ping", {"now": time.time()})
                if chunk is None:
                    break
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        finally:
            self.server.hub.unsubscribe(q)

    # -- POST ----------------------------------------------------------------------------------------------
    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        try:
            if path not in ("/api/revoke", "/api/override"):
                self._json(404, {"error": "not found"})
                return
            form = self._form()
            if form is None:
                return
            if not self.server.password.enabled:
                self._json(403, {"ok": False, "answer": "disabled",
                                 "detail": "admin actions are off: set dashboard.admin_password_file"})
                return
            if not self.server.password.check(form.get("password")):
                time.sleep(FAIL_DELAY)  # slows guessing; each request has its own thread
                self.server.service.counters.add("bad_passwords")
                log.warning("wrong admin password from %s", self.client_address[0])
                f = {k: str(form.get(k, ""))[:MAX_FIELD] for k in ("action", "event", "ticket", "reason", "admin")}
                self.server.service.denied(f["action"] if path == "/api/override" else "revoke", f["event"],
                                           f["ticket"], f["reason"], f["admin"], self.client_address[0])
                self._json(401, {"ok": False, "answer": "denied", "detail": "wrong admin password"})
                return
            result = self._act(path, form)
            if result is not None:
                code = 200 if result.ok else 503 if result.answer in ("unreachable", "timeout") else 409
                self._json(code, result.to_json())
        except HistoryError as exc:
            self._json(500, {"ok": False, "answer": "error", "detail": str(exc)})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _form(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._json(400, {"ok": False, "answer": "bad_request", "detail": "a JSON body of at most 8 KB"})
            return None
        try:
            form = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            form = None
        if not isinstance(form, dict):
            self._json(400, {"ok": False, "answer": "bad_request", "detail": "the body is not a JSON object"})
            return None
        return form

    def _act(self, path: str, form: dict[str, Any]) -> ActionResult | None:
        fields = {k: form.get(k, "") for k in ("admin", "event", "ticket", "reason", "action")}
        bad = [k for k, v in fields.items() if not isinstance(v, str) or len(v) > MAX_FIELD]
        fields = {k: str(v).strip() for k, v in fields.items()}
        needed = ["admin", "ticket"] + (["event"] if path == "/api/override" else [])
        bad += [k for k in needed if not fields[k]]
        if path == "/api/override" and fields["action"] not in ("admit", "unredeem"):
            bad.append("action")
        if bad:
            self._json(400, {"ok": False, "answer": "bad_request",
                             "detail": f"missing or invalid: {', '.join(sorted(set(bad)))}"})
            return None
        service, remote = self.server.service, self.client_address[0]
        if path == "/api/revoke":
            return service.revoke(fields["event"], fields["ticket"], fields["reason"], fields["admin"], remote)
        return service.override(fields["action"], fields["event"], fields["ticket"], fields["reason"],
                                fields["admin"], remote)

    # -- helpers -----------------------------------------------------------------------------------------------
    def _json(self, code: int, data: Any) -> None:
        self._send(code, json.dumps(data, separators=(",", ":")).encode(), "application/json")

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
