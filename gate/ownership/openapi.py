"""The box office's HTTP API as an OpenAPI 3.1 description (served at GET /openapi.json).

`tests/test_boxoffice_server.py` checks it against the server's real routes: every route is
described and every described path is served.  Block formats are in docs/ownership.md.
"""

from __future__ import annotations

from typing import Any

MESSAGE = {"$ref": "#/components/schemas/Message"}
ERROR = {"$ref": "#/components/schemas/Error"}
STATUS_SIGNED = ("Signed like the catalog: `signature` is Ed25519 (hex) over the canonical JSON of every other "
                 "field, under the key of the box office's identity block `boxoffice`; `format` is "
                 "qrgate-status/1 and `at` the answer's time (unix seconds). A gate takes it only from the box "
                 "office it pinned (`ownership.boxoffice_id`), for the ticket it asked, and within 60 s of its clock.")


def _op(summary: str, answer: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: tuple[str, ...] = (), query: tuple[str, ...] = (), errors: tuple[int, ...] = (400, 403, 409)) -> Any:
    op: dict[str, Any] = {"summary": summary, "responses": {
        "200": {"description": "done", "content": {"application/json": {"schema": answer}}},
        **{str(code): {"description": "refused: `error` is a stable code", "content": {
            "application/json": {"schema": ERROR}}} for code in errors}}}
    op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params] + [
        {"name": q, "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}} for q in query]
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


BOXOFFICE_API: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "qrgate box office", "version": "1",
             "description": "The theatre's server: catalog, purchase, payment notice, resale, release, gift, "
                            "ticket status and mailboxes. Blocks travel as qrgate-blocks/1 messages "
                            "(docs/ownership.md). Every step is idempotent: send it again after a lost answer."},
    "paths": {
        "/openapi.json": {"get": _op("this description", {"type": "object"}, errors=())},
        "/hello": {"get": _op("a fixed answer (the benchmark's baseline)", {"type": "object"}, errors=())},
        "/catalog": {"get": _op("the listings, signed with the box office's key (Ed25519 in its identity)",
                                {"$ref": "#/components/schemas/Catalog"}, errors=(503,))},
        "/purchase": {"post": _op("a purchase_request -> reservation, payment_request, and the intent the buyer "
                                  "carries to the payment agent", MESSAGE, body=MESSAGE)},
        "/resale": {"post": _op("a resale_request naming the holder -> the hold (the buyer's sealed request for the "
                                "holder is put in the holder's mailbox)", MESSAGE, body=MESSAGE)},
        "/release": {"post": _op("the holder's release after a hold (a gift, or a sale it hands over itself) -> "
                                 "ownership for the buyer, superseded for the holder", MESSAGE, body=MESSAGE)},
        "/payments/notice": {"post": _op("the payment agent's webhook: an amount-free paid_as_invoiced notice -> "
                                         "a settlement (transferred or refund)", MESSAGE, body=MESSAGE)},
        "/tickets/{event}/{ticket_id}": {"get": _op("who holds a ticket now (the gate's online check), signed",
                                                    {"$ref": "#/components/schemas/Status"},
                                                    params=("event", "ticket_id"), errors=(404,))},
        "/mailbox/{chain}": {
            "post": _op("keep a sealed message for a party (relayed unread)", {
                "type": "object", "properties": {"seq": {"type": "integer"}}}, body=MESSAGE, params=("chain",),
                errors=(400, 404, 429)),
            "get": _op("the messages waiting for a party after sequence number `after` (50 at most)", {
                "type": "object", "properties": {"messages": {"type": "array", "items": {
                    "type": "object", "properties": {"seq": {"type": "integer"}, "message": MESSAGE}}}}},
                params=("chain",), query=("after",), errors=(400,)),
        },
    },
    "components": {"schemas": {
        "Message": {"type": "object", "required": ["format", "blocks"],
                    "properties": {"format": {"const": "qrgate-blocks/1"},
                                   "blocks": {"type": "array", "maxItems": 64, "items": {"type": "object"}}}},
        "Catalog": {"type": "object", "required": ["format", "boxoffice", "at", "tickets", "signature"],
                    "properties": {"format": {"const": "qrgate-catalog/1"}, "boxoffice": {"type": "object"},
                                   "at": {"type": "integer"}, "tickets": {"type": "array"},
                                   "signature": {"type": "string"}}},
        "Status": {"type": "object", "description": STATUS_SIGNED,
                   "required": ["format", "boxoffice", "event", "ticket_id", "generation", "at", "signature"],
                   "properties": {k: {"type": t} for k, t in (
                       ("event", "string"), ("ticket_id", "string"), ("seat", "string"), ("state", "string"),
                       ("holder", "string"), ("generation", "integer"), ("on_hold", "boolean"),
                       ("valid_from", "integer"), ("valid_until", "integer"), ("ended", "boolean"),
                       ("format", "string"), ("boxoffice", "object"), ("at", "integer"), ("signature", "string"))}},
        "Error": {"type": "object", "required": ["error", "message"],
                  "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                                 "reply": MESSAGE}},
    }},
}
