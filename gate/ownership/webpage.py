"""The wallet page: the holder's tickets in plain words, the rotating QR code, and buy, pay, sell and gift.

`WalletPage` serves it from the wallet itself (127.0.0.1 by default: the seeds never leave the wallet,
only codes do) through gate.ownership.web.JsonServer, so the ``Host`` header must name the page (a
DNS-rebinding guard) and bodies are size-limited.  A **session secret** drawn at start is part of the
address the wallet prints (``/?key=...``); the page sends it with every API call (``X-Wallet-Key``) and
the server compares it in constant time, so another site open in the same browser, or another user
of the machine, can neither read the codes nor act.

Routes (JSON unless said):

``GET  /?key=K``            the page (HTML + a little JavaScript, no outside assets)
``GET  /api/tickets``       ``[{event, ticket_id, title, venue, seat, starts, ends}]``: the tickets held
``GET  /api/code?event=E&ticket=T``
                            ``{"text", "t", "slot", "ends_at", "now", "mode", "svg", "note"}``: the code for now
``GET  /api/past``          ``[{event, ticket_id, title, venue, seat, starts, words}]``: the tickets given up,
                            ``words`` such as "Sold to bob for 40.00 EUR." or "Given to bob."
``GET  /api/offers``        (connected) ``{"on_sale", "requests", "bills", "people", "resale"}``: what is on sale,
                            who asks this wallet for which ticket (``who``), the invoices to pay (``words``), the
                            people this wallet knows and the sold tickets it may ask their holder for
``POST /api/buy|pay|sell|gift``  ``{"event", "ticket", "price"?}`` -> ``{"ok", "message"}``
``POST /api/ask``           ``{"event", "ticket", "seller"}``: ask a holder (a chain from ``people``) for a ticket

Every answer a holder sees is a sentence (`WORDS`), never a code alone: ``{"error": code, "message":
sentence}`` with 4xx.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import segno

from gate.holder import MODE_PAPER
from gate.ownership.block import Message
from gate.ownership.exc import ChainError, MalformedBlock, Refused
from gate.ownership.online import OnlineWallet
from gate.ownership.protocol import parse_amount
from gate.ownership.wallet import SETTLED, Wallet
from gate.ownership.web import JsonServer, Raw, Reply, Request, Route
from gate.ticket import QR_ERROR

log = logging.getLogger(__name__)

WORDS = {
    "not_available": "Sorry, someone else has just taken this seat.",
    "ended": "This event is over: its tickets can no longer be bought or sold.",
    "timed_out": "Too late: the reservation ran out. Nothing was charged.",
    "reservation_expired": "Too late: the reservation ran out. The payment is refunded.",
    "not_holder": "This ticket is not yours (any more).",
    "on_hold": "Someone else is buying this ticket right now.",
    "asked_already": "You have asked for this ticket already: the seller's answer will show here.",
    "no_request": "Nobody has asked you for this ticket yet.",
    "no_bill": "No invoice for this ticket has arrived yet.",
    "no_hold": "The box office is not holding this ticket for you.",
    "already_paid": "This is paid already.",
    "answered": "You have answered this request already, at another price: that answer stands.",
    "unknown_ticket": "This ticket is not on sale here.",
    "unreachable": "The box office cannot be reached just now. Please try again in a moment.",
    "not_connected": "This wallet is not connected to a box office yet.",
    "wrong_amount": "That price is not an amount such as 25.00.",
    "malformed": "That request was not understood.",
    "forbidden": "Open the address that `gate wallet serve` printed (it holds this session's key).",
    "already_answered": "You have already sold or given away this ticket: it is no longer yours to sell or give.",
    "seller_not_holder": "That person does not hold this ticket (any more).",
    "own_ticket": "You hold this ticket already.",
    "unknown_chain": "This wallet does not know that person yet: add their identity file first.",
    "internal": "The wallet failed on this request. Please try again.",
}
OUTCOME = {"owned": "The ticket is yours.", "refunded": "The ticket could not be handed over: you are refunded.",
           "timeout": "Too late: the reservation ran out."}


def money(cents: int) -> str:
    return f"{int(cents) // 100}.{int(cents) % 100:02d}"


def words(code: str) -> str:
    return WORDS.get(code, f"Something went wrong ({code}).")


class WalletPage(JsonServer):
    """The wallet page's server; `start()` serves in a thread, `stop()` ends it; `url` holds the session key."""

    def __init__(self, wallet: Wallet, online: OnlineWallet | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time, secret: str = "", settle: float = 8.0) -> None:
        self.wallet = wallet
        self.online = online
        self.clock = clock
        self.settle = settle
        self.secret = secret or secrets.token_urlsafe(18)
        super().__init__(self.routes(), host=host, port=port, name="wallet-page")

    @property
    def url(self) -> str:
        return f"{self.origin}/?key={self.secret}"

    def routes(self) -> list[Route]:
        api = [("GET", "tickets", lambda r: self.tickets()), ("GET", "code", self.code),
               ("GET", "offers", lambda r: self.offers()), ("POST", "buy", self.buy), ("POST", "pay", self.pay),
               ("POST", "sell", self.sell), ("POST", "gift", self.gift),
               ("GET", "past", lambda r: self.past()), ("POST", "ask", self.ask)]
        return [Route("GET", "/", self._page),
                *(Route(method, f"/api/{name}", self._guarded(fn)) for method, name, fn in api)]

    # what the page shows ---------------------------------------------------------------------------------
    def tickets(self) -> list[dict[str, object]]:
        return [{"event": t["event"], "ticket_id": t["ticket_id"], "title": t["title"] or t["event"],
                 "venue": t["venue"], "seat": t["seat"], "starts": t["valid_from"], "ends": t["valid_until"]}
                for t in self.wallet.shown()]

    def code(self, request: Request) -> dict[str, object]:
        now = self.clock()
        text, code, terms = self.wallet.code(request.query.get("event", ""), request.query.get("ticket", ""), now)
        svg = segno.make_qr(text, error=QR_ERROR, boost_error=False).svg_inline(scale=4, border=4, omitsize=True)
        note = "Not valid yet: show this at the door once it opens." if now < terms.start else ""
        return {"text": text, "t": code.t, "slot": terms.slot, "ends_at": terms.slot_ends(code.t), "now": now,
                "mode": "paper" if terms.mode == MODE_PAPER else "rotating", "svg": svg, "note": note}

    def past(self) -> list[dict[str, object]]:
        shown = []
        for t in self.wallet.given_up():
            to = f" to {t['to']}" if t["to"] else ""
            said = {"sold": f"Sold{to} for {money(t['amount'])} {t['currency']}.",  # type: ignore[arg-type]
                    "given": f"Given{to}."}.get(str(t["how"]), "No longer yours.")
            shown.append({"event": t["event"], "ticket_id": t["ticket_id"], "title": t["title"] or t["event"],
                          "venue": t["venue"], "seat": t["seat"], "starts": t["valid_from"], "words": said})
        return shown

    def offers(self) -> dict[str, object]:
        online = self._online()
        online.refresh()
        online.sync()
        now = self.clock()
        sale = [{"event": x["event"], "ticket_id": x["ticket_id"], "title": x["title"] or x["event"],
                 "venue": x["venue"], "seat": x["seat"], "price": money(x["price"]),  # type: ignore[arg-type]
                 "currency": x["currency"], "starts": x["valid_from"]} for x in self.wallet.on_sale(now)]
        people = self.wallet.people()
        names = {p["chain"]: p["name"] for p in people}
        asks: dict[tuple[str, str], list[str]] = {}
        for event, ticket, asker in online.open_asks():
            asks.setdefault((event, ticket), []).append(names.get(asker, "someone"))
        pair = [{"event": e, "ticket_id": t, "who": " and ".join(dict.fromkeys(who))} for (e, t), who in asks.items()]
        due = {(str(x["event"]), str(x["ticket_id"])): x for x in self.wallet.owed()}
        bills = []
        for event, ticket in online.open_bills():
            owed = due.get((event, ticket), {})
            price = f"{money(owed['amount'])} {owed['currency']}" if owed else ""  # type: ignore[arg-type]
            bills.append({"event": event, "ticket_id": ticket, "words": " ".join(filter(None, [
                str(owed.get("to") or "The seller"), "asks", price or "a price", "for", self._named(event, ticket)
            ])) + "."})
        held = {(t["event"], t["ticket_id"]) for t in self.wallet.shown()}
        resale = [{"event": x["event"], "ticket_id": x["ticket_id"], "words": self._named(str(x["event"]),
                                                                                          str(x["ticket_id"]))}
                  for x in self.wallet.catalog_sold(now) if (x["event"], x["ticket_id"]) not in held]
        return {"on_sale": sale, "requests": pair, "bills": bills, "people": people, "resale": resale}

    # what the holder does --------------------------------------------------------------------------------
    def buy(self, request: Request) -> dict[str, object]:
        online, (event, ticket) = self._online(), self._which(request)
        return self._outcome(online, online.pay(online.buy(event, ticket)).blocks[-1].txn)

    def pay(self, request: Request) -> dict[str, object]:
        online, (event, ticket) = self._online(), self._which(request)
        online.sync()
        return self._outcome(online, online.pay(online.bill_for(event, ticket)).blocks[-1].txn)

    def sell(self, request: Request) -> dict[str, object]:
        online, (event, ticket) = self._online(), self._which(request)
        try:
            cents = parse_amount(str(request.json().get("price", "")))
        except ValueError:
            raise Refused("wrong_amount", "not an amount") from None
        online.sync()
        online.sell(self._request_for(online, event, ticket), cents, "EUR")
        return {"ok": True, "message": "Invoice sent. Only the buyer can read the price; the ticket moves to them "
                                       "when they pay."}

    def gift(self, request: Request) -> dict[str, object]:
        online, (event, ticket) = self._online(), self._which(request)
        online.sync()
        online.gift(self._request_for(online, event, ticket))
        return {"ok": True, "message": "Given away."}

    def ask(self, request: Request) -> dict[str, object]:
        online, (event, ticket) = self._online(), self._which(request)
        seller = request.json().get("seller")
        if not isinstance(seller, str):
            raise MalformedBlock("expected {event, ticket, seller}")
        name = next((p["name"] for p in self.wallet.people() if p["chain"] == seller), "")
        if not name:
            raise Refused("unknown_chain", "not a wallet this one knows")
        if any(d["role"] == "buyer" and (d["event"], d["ticket_id"]) == (event, ticket)
               and d["state"] in ("reserved", "billed", "paying") for d in self.wallet.deals()):
            raise Refused("asked_already", "the box office holds the ticket for this wallet's request already")
        try:
            online.ask(event, ticket, seller)
        except Refused as exc:
            if exc.code == "not_holder":
                raise Refused("seller_not_holder", str(exc)) from None
            raise
        return {"ok": True, "message": f"Asked {name} for {self._named(event, ticket)}. The box office keeps it for "
                                       f"you meanwhile; {name}'s price will show here to pay."}

    # helpers ---------------------------------------------------------------------------------------------
    def _request_for(self, online: OnlineWallet, event: str, ticket: str) -> Message:
        """The open request for the ticket; Refused `already_answered` if this wallet sold or gave it meanwhile
        (another tab, the command line), so the holder is not told that nobody asked."""
        try:
            return online.request_for(event, ticket)
        except Refused as exc:
            gone = (event, ticket) not in {(t["event"], t["ticket_id"]) for t in self.wallet.shown()}
            answered = any(d["role"] == "seller" and (d["event"], d["ticket_id"]) == (event, ticket)
                           and d["state"] != "timeout" for d in self.wallet.deals())
            if exc.code == "no_request" and (gone or answered):
                raise Refused("already_answered", str(exc)) from None
            raise

    def _named(self, event: str, ticket: str) -> str:
        """A ticket in the words of its catalog: 'Hamlet · Town Hall · Seat 12B'."""
        item = self.wallet.listed(event, ticket) or {}
        seat = f"Seat {item['seat']}" if item.get("seat") else ""
        return " · ".join(str(x) for x in (item.get("title") or event, item.get("venue"), seat) if x)

    def _outcome(self, online: OnlineWallet, txn: str) -> dict[str, object]:
        end = self.clock() + self.settle
        while (state := online.state(txn)) not in SETTLED and self.clock() < end:
            time.sleep(0.1)
            online.sync()
        return {"ok": state == "owned", "message": OUTCOME.get(state, "Paid. The box office is handing the "
                                                                      "ticket over; it will appear here.")}

    def _online(self) -> OnlineWallet:
        if self.online is None:
            raise Refused("not_connected", "no box office")
        return self.online

    @staticmethod
    def _which(request: Request) -> tuple[str, str]:
        body = request.json()
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("event", "ticket")):
            raise MalformedBlock("expected {event, ticket}")
        return body["event"], body["ticket"]

    def _allowed(self, key: str) -> bool:
        return hmac.compare_digest(key.encode(), self.secret.encode())

    def _page(self, request: Request) -> Reply:
        if not self._allowed(request.query.get("key", "")):
            return 403, Raw("text/plain; charset=utf-8", words("forbidden").encode())
        return 200, Raw("text/html; charset=utf-8", PAGE.encode())

    def _guarded(self, fn: Callable[[Request], Any]) -> Callable[[Request], Reply]:
        def run(request: Request) -> Reply:
            if not self._allowed(request.headers.get("x-wallet-key", "")):
                return 403, {"error": "forbidden", "message": words("forbidden")}
            try:
                return 200, fn(request)
            except ChainError as exc:
                code = getattr(exc, "code", "chain_error")
                return (404 if code == "not_holder" else 409), {"error": code, "message": words(code)}
        return run


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>My tickets</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1rem; background: #f4f4f4; color: #222; }
 .card { background: #fff; border-radius: 12px; padding: 1rem; margin: 0 auto 1rem; max-width: 22rem;
         box-shadow: 0 1px 4px #0003; }
 .card h2 { margin: 0 0 .25rem; font-size: 1.3rem; }
 .when, .where { margin: .1rem 0; color: #444; }
 .qr svg { width: 100%; height: auto; image-rendering: pixelated; }
 .meta { color: #444; font-size: .9rem; text-align: center; }
 .bar { height: 6px; background: #2a7; border-radius: 3px; transition: width .25s linear; }
 .past { color: #666; } .past .how { font-weight: bold; }
 button { font-size: 1rem; padding: .4rem .8rem; margin: .2rem .2rem .2rem 0; }
 input, select { font-size: 1rem; padding: .3rem; margin: .2rem 0; max-width: 100%; }
 #say { max-width: 22rem; margin: 0 auto 1rem; padding: .6rem; border-radius: 8px; background: #ffe; display: none; }
 #say.bad { background: #fdd; }
 h1 { max-width: 22rem; margin: .5rem auto; }
 .hidden { display: none; }
</style></head>
<body><h1>My tickets</h1><p id="say" role="status"></p><main id="tickets"><p>Loading…</p></main>
<div id="pastbox" class="hidden"><h1>No longer mine</h1><main id="past"></main></div>
<h1>On sale</h1><main id="shop"></main>
<div id="askbox" class="hidden"><h1>Ask someone for their ticket</h1>
<section class="card"><label>Who <select id="ask-who"></select></label><br>
<label>Which ticket <select id="ask-ticket"></select></label><br><button id="ask">Ask</button></section></div>
<script>
const KEY = new URLSearchParams(location.search).get("key") || "";
const main = document.getElementById("tickets"), shop = document.getElementById("shop");
const past = document.getElementById("past");
const say = (x) => {
  const s = document.getElementById("say"); s.textContent = x.message; s.style.display = "block";
  s.className = x.error ? "bad" : "";
};
async function api(path, body) {
  try {
    const r = await fetch("/api/" + path, {cache: "no-store", method: body ? "POST" : "GET",
      headers: {"X-Wallet-Key": KEY, "Content-Type": "application/json"}, body: body ? JSON.stringify(body) : null});
    const x = await r.json();
    if (!r.ok && !(x && x.message)) throw new Error("no message");
    return x;
  } catch (e) {
    return {error: "unreachable", message: "The wallet cannot be reached just now. Please try again in a moment."};
  }
}
const day = (t) => new Date(t * 1000).toLocaleString([], {weekday: "long", day: "numeric", month: "long",
                                                          year: "numeric", hour: "2-digit", minute: "2-digit"});
const where = (t, extra) => [t.venue, t.seat ? "Seat " + t.seat : "", extra || ""].filter(Boolean).join(" · ");
function card(t) {
  const c = document.createElement("section");
  c.className = "card"; c.dataset.event = t.event; c.dataset.ticket = t.ticket_id;
  c.innerHTML = `<h2></h2><p class="when"></p><p class="where"></p><div class="qr"></div><div class="bar"></div>
                 <p class="meta"></p><div class="acts"></div>`;
  c.querySelector("h2").textContent = t.title;
  c.querySelector(".when").textContent = day(t.starts);
  c.querySelector(".where").textContent = where(t);
  return c;
}
async function refresh(c) {
  const q = `code?event=${encodeURIComponent(c.dataset.event)}&ticket=${encodeURIComponent(c.dataset.ticket)}`;
  const x = await api(q);
  if (x.error) { c.querySelector(".meta").textContent = x.message; c.querySelector(".qr").innerHTML = ""; return; }
  c.querySelector(".qr").innerHTML = x.svg;
  Object.assign(c.dataset, {t: x.t, text: x.text, ends: x.ends_at, slot: x.slot, mode: x.mode, note: x.note,
                            offset: x.now - Date.now() / 1000});
}
function tick() {
  for (const c of main.querySelectorAll(".card")) {
    if (!c.dataset.ends) continue;
    const meta = c.querySelector(".meta");
    if (c.dataset.mode === "paper") { meta.textContent = "Paper ticket: this code does not change."; continue; }
    const left = Number(c.dataset.ends) - (Date.now() / 1000 + Number(c.dataset.offset));
    c.querySelector(".bar").style.width = Math.max(0, 100 * left / Number(c.dataset.slot)) + "%";
    meta.textContent = c.dataset.note || `The code changes in ${Math.max(0, Math.ceil(left))} s`;
    if (left <= 0 && !c.dataset.busy) { c.dataset.busy = "1"; refresh(c).finally(() => { delete c.dataset.busy; }); }
  }
}
let busy = 0, shown = "";
function button(label, action, cls) {
  const b = document.createElement("button"); b.textContent = label; if (cls) b.className = cls;
  b.onclick = async () => {
    b.disabled = true; busy++;
    const x = await action(); say(x);
    busy--; b.disabled = false; load(true);
  };
  return b;
}
async function load(force) {
  const [tickets, gone, o] = [await api("tickets"), await api("past"), await api("offers")];
  const now = JSON.stringify([tickets, gone, o]);
  if (!force && (now === shown || busy)) return;
  shown = now;
  const typed = {};  // a price being typed survives a redraw
  for (const c of main.querySelectorAll(".card")) {
    const p = c.querySelector(".price"); if (p) typed[c.dataset.event + "/" + c.dataset.ticket] = p.value;
  }
  if (tickets.error) { main.textContent = tickets.message; return; }
  main.innerHTML = tickets.length ? "" : "<p>No tickets yet.</p>";
  for (const t of tickets) { const c = card(t); main.appendChild(c); await refresh(c); }
  past.innerHTML = "";
  document.getElementById("pastbox").className = gone.length ? "" : "hidden";
  for (const t of gone.error ? [] : gone) {
    const p = document.createElement("section"); p.className = "card past";
    p.dataset.event = t.event; p.dataset.ticket = t.ticket_id;
    p.innerHTML = "<h2></h2><p class='when'></p><p class='where'></p><p class='how'></p>";
    p.querySelector("h2").textContent = t.title;
    p.querySelector(".when").textContent = day(t.starts);
    p.querySelector(".where").textContent = where(t);
    p.querySelector(".how").textContent = t.words;
    past.appendChild(p);
  }
  shop.innerHTML = "";
  if (o.error) { shop.textContent = o.message; return; }
  for (const r of o.requests) {
    const c = [...main.querySelectorAll(".card")].find(x => x.dataset.event === r.event && x.dataset.ticket === r.ticket_id);
    if (!c) continue;
    const acts = c.querySelector(".acts"), price = document.createElement("input");
    price.placeholder = "price, e.g. 40.00"; price.className = "price"; price.size = 10;
    price.value = typed[r.event + "/" + r.ticket_id] || "";
    const ask = document.createElement("p"); ask.className = "asks"; ask.textContent = `${r.who} asks for this ticket.`;
    acts.append(ask, price,
                button("Sell", () => api("sell", {event: r.event, ticket: r.ticket_id, price: price.value}), "sell"),
                button("Give away", () => api("gift", {event: r.event, ticket: r.ticket_id}), "gift"));
  }
  for (const b of o.bills) {
    const p = document.createElement("section"); p.className = "card offer bill";
    const w = document.createElement("p"); w.textContent = b.words;
    p.append(w, button("Pay", () => api("pay", {event: b.event, ticket: b.ticket_id}), "pay"));
    shop.appendChild(p);
  }
  for (const s of o.on_sale) {
    const p = document.createElement("section"); p.className = "card offer";
    p.innerHTML = "<h2></h2><p class='when'></p><p class='where'></p>";
    p.querySelector("h2").textContent = s.title;
    p.querySelector(".when").textContent = day(s.starts);
    p.querySelector(".where").textContent = where(s, `${s.price} ${s.currency}`);
    p.appendChild(button("Buy", () => api("buy", {event: s.event, ticket: s.ticket_id}), "buy"));
    shop.appendChild(p);
  }
  if (!o.on_sale.length && !o.bills.length) shop.innerHTML = "<p>Nothing on sale just now.</p>";
  const who = document.getElementById("ask-who"), which = document.getElementById("ask-ticket");
  const options = (select, items) => {
    const keep = select.value; select.innerHTML = "";
    for (const [value, label] of items) { const o = document.createElement("option"); o.value = value;
                                          o.textContent = label; select.appendChild(o); }
    if (items.some(([v]) => v === keep)) select.value = keep;
  };
  options(who, o.people.map(p => [p.chain, p.name]));
  options(which, o.resale.map(r => [r.event + "/" + r.ticket_id, r.words]));
  document.getElementById("askbox").className = o.people.length && o.resale.length ? "" : "hidden";
}
const asking = button("Ask", () => {
  const [event, ticket] = document.getElementById("ask-ticket").value.split("/");
  return api("ask", {event, ticket, seller: document.getElementById("ask-who").value});
});
asking.id = "ask"; document.getElementById("ask").replaceWith(asking);
load(true).then(() => { setInterval(tick, 250); tick(); setInterval(() => { if (!document.hidden) load(false); }, 3000); });
</script></body></html>
"""
