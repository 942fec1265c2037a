"""The dashboard's web server: the login, the page, its live updates (server-sent events) and the admin actions.

Standard library only; the page is static files from sync/dashboard/static/ with no outside assets.
Connections come in through sync/dashboard/intake.py (no thread until a request is whole; limits and
timeouts there), over HTTPS when ``dashboard.cert_file`` is set.  Routes:

``GET /login``, ``GET /static/login.js|app.css``   the login form (no data in it; the only open routes)
``POST /api/login``            ``{"name", "password"}`` → ``{"ok", "account", "role", "csrf"}`` and the session
                               cookie; 401 wrong, 429 throttled (``Retry-After``)
``GET /``                      the page (no session: a redirect to /login)
``GET /static/app.js``         its script
``GET /api/session``           ``{"account", "role", "csrf"}``
``GET /events``                server-sent events: ``state`` (everything the page shows; the first one also
                               holds the live ``feed``), ``scan`` (one decision, the moment it arrives), ``ping``
``GET /api/state``             the same state (with the feed) as JSON
``GET /api/ticket?ticket=T[&event=E]``
                               ``{"ticket", "event", "rows": [...]}``: one ticket's history across gates
``POST /api/logout``           ends the session
``POST /api/revoke``           ``{"event", "ticket", "reason"}`` (event empty: every event); role admin
``POST /api/override``         ``{"action": "admit"|"unredeem", "event", "ticket", "reason"}``; role admin

What a caller may rely on:

* Every request first passes the Host allow-list (``dashboard.hosts``, the listening address and the
  loopback names; else 421): a web page that rebinds its own name to this address is refused.
* Every route but the login form needs a session (401).  Every POST but the login needs the session's
  CSRF token in ``X-CSRF-Token`` (403), and every POST (the login too) a JSON body, and an ``Origin``, if
  the browser sends one, of this server (403).  The cookie is HttpOnly, SameSite=Strict, and ``Secure``
  (named ``__Host-qrgate``) over HTTPS.
* Revoke and override need the admin role (403, audited as denied); the audit and the arbiter's
  request name the session's account, whatever the body says.
* Answers are JSON ``{"ok", "answer", "detail", "seq"}``: 200 when the arbiter did it, 409 when it
  answered otherwise, 503 when the broker or the arbiter cannot be reached, 400 for a bad request.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import socket
import ssl
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sync.dashboard.accounts import AccountError
from sync.dashboard.auth import Session, Sessions, Throttle
from sync.dashboard.history import HistoryError
from sync.dashboard.hub import Hub, sse
from sync.dashboard.intake import Intake, Limits, Request
from sync.dashboard.model import Model
from sync.dashboard.service import ActionResult, DashboardService

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
FILES = {"/": ("index.html", "text/html; charset=utf-8"), "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/static/app.css": ("app.css", "text/css; charset=utf-8"),
         "/login": ("login.html", "text/html; charset=utf-8"),
         "/static/login.js": ("login.js", "text/javascript; charset=utf-8")}
OPEN = frozenset({"/login", "/static/login.js", "/static/app.css"})
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                      "frame-ancestors 'none'; form-action 'self'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
           "X-Frame-Options": "DENY"}
LOOPBACK = ("localhost", "127.0.0.1", "::1")
PING_EVERY = 5.0
MAX_BODY = 8192
MAX_FIELD = 200


class DashboardServer:
    """`serve_forever()` in a thread, `shutdown()`, then `server_close()`."""

    def __init__(self, address: tuple[str, int], service: DashboardService, model: Model, hub: Hub,
                 sessions: Sessions, *, throttle: Throttle | None = None, tls: ssl.SSLContext | None = None,
                 hosts: Iterable[str] = (), limits: Limits | None = None) -> None:
        self.service = service
        self.model = model
        self.hub = hub
        self.sessions = sessions
        self.accounts = sessions.accounts
        self.throttle = throttle or Throttle()
        self.tls = tls is not None
        self.cookie = "__Host-qrgate" if self.tls else "qrgate"
        self.pages = {route: ((STATIC / name).read_bytes(), kind) for route, (name, kind) in FILES.items()}
        self.intake = Intake(address, self._serve, tls=tls, stream_paths=("/events",), limits=limits or Limits(),
                             counters=service.counters.add)
        self.server_address = self.intake.server_address
        bound = str(self.server_address[0])
        self.hosts = frozenset(h.lower().strip("[]") for h in (*hosts, *LOOPBACK, bound) if h not in ("", "0.0.0.0", "::"))

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        host = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else \
            f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{port}/"

    def serve_forever(self) -> None:
        self.intake.serve_forever()

    def shutdown(self) -> None:
        self.intake.shutdown()

    def server_close(self) -> None:
        self.intake.server_close()

    def state(self) -> dict[str, Any]:
        return self.model.snapshot(time.time(), feed=True, counters=self.service.counters.snapshot())

    def _serve(self, request: Request) -> None:
        Handler(request, request.address, self)  # type: ignore[arg-type]


class _Writer(io.RawIOBase):
    """The handler's wfile: every write sent whole (the socket has the write timeout)."""

    def __init__(self, request: Request) -> None:
        self._sock = request.sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        return len(data)


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer  # type: ignore[assignment]
    request: Request
    server_version = "qrgate-dashboard"

    def setup(self) -> None:
        """The request was read whole by the intake: read it from memory, write to the socket."""
        self.connection = self.request.sock
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # events: small writes in a row
        self.rfile = io.BytesIO(self.request.data)
        self.wfile = _Writer(self.request)  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    # -- who is asking ---------------------------------------------------------------------------------
    def _host_ok(self) -> bool:
        """The Host header names this server (DNS rebinding: a foreign name pointed at our address)."""
        host = _host_name(self.headers.get("Host", ""))
        if host in self.server.hosts:
            return True
        self.server.service.counters.add("bad_hosts")
        self._json(421, {"ok": False, "answer": "bad_host", "detail": "this server does not answer for that host "
                                                                      "name (dashboard.hosts)"})
        return False

    def _session(self) -> Session | None:
        return self.server.sessions.find(_cookie(self.headers.get("Cookie", ""), self.server.cookie))

    def _same_origin(self) -> bool:
        """A POST from our own page: JSON, and no foreign Origin or fetch site (a form on another page)."""
        origin = self.headers.get("Origin")
        scheme = "https" if self.server.tls else "http"
        ok = (self.headers.get("Content-Type", "").split(";")[0].strip() == "application/json"
              and (origin is None or origin == f"{scheme}://{self.headers.get('Host', '')}")
              and self.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none"))
        if not ok:
            self.server.service.counters.add("cross_site_refused")
            self._json(403, {"ok": False, "answer": "cross_site", "detail": "not from this dashboard's page"})
        return ok

    # -- GET ----------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        try:
            if not self._host_ok():
                return
            if url.path in OPEN:
                self._page(url.path)
                return
            session = self._session()
            if session is None:
                if url.path == "/":
                    self._redirect("/login")
                else:
                    self._json(401, {"ok": False, "answer": "login", "detail": "log in first (/login)"})
            elif url.path in self.server.pages:
                self._page(url.path)
            elif url.path == "/events":
                self._events(self.headers.get("Cookie", ""))
            elif url.path == "/api/state":
                self._json(200, self.server.state())
            elif url.path == "/api/session":
                self._json(200, {"account": session.account, "role": session.role, "csrf": session.csrf})
            elif url.path == "/api/ticket":
                self._ticket(parse_qs(url.query))
            else:
                self._json(404, {"error": "not found"})
        except (HistoryError, AccountError) as exc:
            log.error("dashboard: %s", exc)
            self._json(500, {"error": str(exc)})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the browser went away

    def _page(self, route: str) -> None:
        body, kind = self.server.pages[route]
        self._send(200, body, kind)

    def _ticket(self, query: dict[str, list[str]]) -> None:
        ticket = (query.get("ticket") or [""])[0].strip()
        event = (query.get("event") or [""])[0].strip() or None
        if not ticket or len(ticket) > MAX_FIELD:
            self._json(400, {"error": "give ?ticket=ID (and optionally &event=E)"})
            return
        self._json(200, {"ticket": ticket, "event": event, "rows": self.server.service.history.ticket(ticket, event)})

    def _events(self, cookies: str) -> None:
        token = _cookie(cookies, self.server.cookie)
        q = self.server.hub.subscribe()  # before the first state: nothing can fall between the two
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("X-Accel-Buffering", "no")
            for name, value in HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(b"retry: 1000\n\n" + sse("state", self.server.state()))
            while True:
                try:
                    chunk = q.get(timeout=PING_EVERY)
                except queue.Empty:
                    if self.server.sessions.find(token) is None:
                        break  # logged out, expired or removed: the stream ends with the session
                    chunk = sse("ping", {"now": time.time()})
                if chunk is None:
                    break
                self.wfile.write(chunk)
        finally:
            self.server.hub.unsubscribe(q)

    # -- POST ----------------------------------------------------------------------------------------------
    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        try:
            if not self._host_ok() or not self._same_origin():
                return
            if path == "/api/login":
                form = self._form()
                if form is not None:
                    self._login(form)
                return
            session = self._session()
            if session is None:
                self._json(401, {"ok": False, "answer": "login", "detail": "log in first (/login)"})
            elif not session.csrf_ok(self.headers.get("X-CSRF-Token")):
                self.server.service.counters.add("csrf_refused")
                self._json(403, {"ok": False, "answer": "csrf", "detail": "missing or wrong X-CSRF-Token: reload"})
            elif path == "/api/logout":
                self.server.sessions.close(_cookie(self.headers.get("Cookie", ""), self.server.cookie) or "")
                self._json(200, {"ok": True, "answer": "logged_out"}, cookie=self._cookie_header("", 0))
            elif path in ("/api/revoke", "/api/override"):
                form = self._form()
                if form is not None:
                    self._admin(path, form, session)
            else:
                self._json(404, {"error": "not found"})
        except (HistoryError, AccountError) as exc:
            log.error("dashboard: %s", exc)
            self._json(500, {"ok": False, "answer": "error", "detail": str(exc)})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass

    def _login(self, form: dict[str, Any]) -> None:
        name, password = form.get("name"), form.get("password")
        if not isinstance(name, str) or not isinstance(password, str) or not name or len(name) > 64 \
                or len(password) > 1024:
            self._json(400, {"ok": False, "answer": "bad_request", "detail": "give name and password"})
            return
        counters = self.server.service.counters
        wait = self.server.throttle.take(name)
        if wait:
            counters.add("logins_throttled")
            self._json(429, {"ok": False, "answer": "throttled", "detail": f"too many failed logins: try again in "
                             f"{wait:.0f} s"}, extra={"Retry-After": str(max(1, round(wait)))})
            return
        account = self.server.accounts.check(name, password)
        if account is None:
            counters.add("logins_failed")
            log.warning("dashboard: failed login for %r from %s", name[:64], self.client_address[0])
            self._json(401, {"ok": False, "answer": "denied", "detail": "wrong name or password"})
            return
        self.server.throttle.succeeded(name)
        counters.add("logins")
        token, session = self.server.sessions.open(account)
        self._json(200, {"ok": True, "answer": "logged_in", "account": session.account, "role": session.role,
                         "csrf": session.csrf}, cookie=self._cookie_header(token, int(self.server.sessions.lifetime)))

    def _cookie_header(self, token: str, max_age: int) -> str:
        secure = "; Secure" if self.server.tls else ""
        return f"{self.server.cookie}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"

    def _admin(self, path: str, form: dict[str, Any], session: Session) -> None:
        fields = {k: form.get(k, "") for k in ("event", "ticket", "reason", "action")}
        bad = [k for k, v in fields.items() if not isinstance(v, str) or len(v) > MAX_FIELD]
        fields = {k: str(v).strip()[:MAX_FIELD] for k, v in fields.items()}
        action = fields["action"] if path == "/api/override" else "revoke"
        service, remote = self.server.service, self.client_address[0]
        if not session.admin:
            service.denied(action, fields["event"], fields["ticket"], fields["reason"], session.account, remote,
                           "not an admin")
            self._json(403, {"ok": False, "answer": "denied", "detail": f"{session.account} is a viewer: revoking "
                                                                        "and overriding need the admin role"})
            return
        bad += [k for k in ("ticket", *(["event"] if path == "/api/override" else [])) if not fields[k]]
        if path == "/api/override" and action not in ("admit", "unredeem"):
            bad.append("action")
        if bad:
            self._json(400, {"ok": False, "answer": "bad_request",
                             "detail": f"missing or invalid: {', '.join(sorted(set(bad)))}"})
            return
        if path == "/api/revoke":
            result = service.revoke(fields["event"], fields["ticket"], fields["reason"], session.account, remote)
        else:
            result = service.override(action, fields["event"], fields["ticket"], fields["reason"], session.account,
                                      remote)
        self._answer(result)

    def _answer(self, result: ActionResult) -> None:
        code = 200 if result.ok else 503 if result.answer in ("unreachable", "timeout") else 409
        self._json(code, result.to_json())

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

    # -- helpers -----------------------------------------------------------------------------------------------
    def _redirect(self, where: str) -> None:
        self.send_response(303)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()

    def _json(self, code: int, data: Any, *, cookie: str | None = None, extra: dict[str, str] | None = None) -> None:
        headers = {**(extra or {}), **({"Set-Cookie": cookie} if cookie else {})}
        self._send(code, json.dumps(data, separators=(",", ":")).encode(), "application/json", headers)

    def _send(self, code: int, body: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _host_name(header: str) -> str:
    """The host of a Host header, lower case, without its port ("[::1]:8080" -> "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None
