"""The wallet page: the holder's rotating QR codes in a browser, served by the wallet itself.

`WalletPage` runs a small standard-library HTTP server (127.0.0.1 by
default: the seeds never leave the wallet, only codes do) with three routes:

``/``             the page (HTML + a little JavaScript, no outside assets)
``/tickets.json`` ``[{"event", "ticket_id", "generation"}]`` of the held tickets
``/code.json?event=E&ticket=T``
                  ``{"text", "t", "slot", "ends_at", "now", "mode", "svg"}``: the QR text
                  for now, its slot, when the slot ends (server clock) and the QR as inline SVG

The page fetches a ticket's code when its slot ends, so it rotates every
`slot` seconds; it corrects for the difference between the browser's clock and
the wallet's (``now``).  Errors are JSON ``{"error": code}`` with 404 or 500.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import segno

from gate.holder import MODE_PAPER
from gate.ownership.exc import ChainError
from gate.ownership.wallet import Wallet
from gate.ticket import QR_ERROR

log = logging.getLogger(__name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>qrgate wallet</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1rem; background: #f4f4f4; }
 .card { background: #fff; border-radius: 12px; padding: 1rem; margin: 0 auto 1rem; max-width: 22rem;
         box-shadow: 0 1px 4px #0003; text-align: center; }
 .qr svg { width: 100%; height: auto; image-rendering: pixelated; }
 .meta { color: #444; font-size: .9rem; }
 .bar { height: 6px; background: #2a7; border-radius: 3px; transition: width .25s linear; }
</style></head>
<body><h1>Tickets</h1><main id="tickets"><p id="empty">Loading…</p></main>
<script>
const main = document.getElementById("tickets");
async function getJSON(url) { const r = await fetch(url, {cache: "no-store"}); return r.json(); }
async function refresh(card) {
  const c = await getJSON(`/code.json?event=${encodeURIComponent(card.dataset.event)}` +
                          `&ticket=${encodeURIComponent(card.dataset.ticket)}`);
  if (c.error) { card.querySelector(".meta").textContent = "error: " + c.error; return; }
  card.querySelector(".qr").innerHTML = c.svg;
  card.dataset.t = c.t; card.dataset.text = c.text; card.dataset.ends = c.ends_at; card.dataset.slot = c.slot;
  card.dataset.offset = c.now - Date.now() / 1000; card.dataset.mode = c.mode;
}
function tick() {
  for (const card of main.querySelectorAll(".card")) {
    if (!card.dataset.ends) continue;
    const meta = card.querySelector(".meta");
    if (card.dataset.mode === "paper") { meta.textContent = "paper code (static)"; continue; }
    const left = Number(card.dataset.ends) - (Date.now() / 1000 + Number(card.dataset.offset));
    card.querySelector(".bar").style.width = Math.max(0, 100 * left / Number(card.dataset.slot)) + "%";
    meta.textContent = `slot ${card.dataset.t} · ${Math.max(0, Math.ceil(left))} s left`;
    if (left <= 0 && !card.dataset.busy) {
      card.dataset.busy = "1";
      refresh(card).finally(() => { delete card.dataset.busy; });
    }
  }
}
async function start() {
  const tickets = await getJSON("/tickets.json");
  main.innerHTML = tickets.length ? "" : "<p>No tickets.</p>";
  for (const t of tickets) {
    const card = document.createElement("section");
    card.className = "card"; card.dataset.event = t.event; card.dataset.ticket = t.ticket_id;
    card.innerHTML = `<h2></h2><div class="qr"></div><div class="bar"></div><p class="meta"></p>`;
    card.querySelector("h2").textContent = `${t.event} · ${t.ticket_id} (generation ${t.generation})`;
    main.appendChild(card);
    await refresh(card);
  }
  setInterval(tick, 250); tick();
}
start();
</script></body></html>
"""


class WalletPage:
    """The wallet page's HTTP server; `start()` serves in a thread, `stop()` ends it."""

    def __init__(self, wallet: Wallet, *, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.wallet = wallet
        self.clock = clock
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> WalletPage:
        self._thread = threading.Thread(target=self.server.serve_forever, name="wallet-page", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def tickets(self) -> list[dict[str, object]]:
        return [{"event": t["event"], "ticket_id": t["ticket_id"], "generation": t["generation"]}
                for t in self.wallet.tickets() if t["state"] == "held"]

    def code(self, event: str, ticket_id: str) -> dict[str, object]:
        now = self.clock()
        text, code, terms = self.wallet.code(event, ticket_id, now)
        svg = segno.make_qr(text, error=QR_ERROR, boost_error=False).svg_inline(scale=4, border=4, omitsize=True)
        return {"text": text, "t": code.t, "slot": terms.slot, "ends_at": terms.slot_ends(code.t), "now": now,
                "mode": "paper" if terms.mode == MODE_PAPER else "rotating", "svg": svg}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                try:
                    if url.path == "/":
                        self._send(200, "text/html; charset=utf-8", PAGE.encode())
                    elif url.path == "/tickets.json":
                        self._json(200, page.tickets())
                    elif url.path == "/code.json":
                        self._json(200, page.code(query.get("event", ""), query.get("ticket", "")))
                    else:
                        self._json(404, {"error": "not_found"})
                except ChainError as exc:
                    self._json(404 if getattr(exc, "code", "") == "not_holder" else 500,
                               {"error": getattr(exc, "code", "chain_error"), "message": str(exc)})

            def _json(self, status: int, body: object) -> None:
                self._send(status, "application/json", json.dumps(body).encode())

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("wallet page: " + format, *args)

        return Handler
