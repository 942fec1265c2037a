"""Check-in lists as data: which tickets a list admits, when, and how often (docs/checkin-lists.md).

A list is a small signed document an issuer writes once and every gate of the list holds::

    {"format": "qrgate-checkin-list/1", "kid": "0a1b2c3d", "scheme": "hmac" | "ed25519",
     "list": {...the fields of CheckinList...}, "sig": "<hex>"}

The signature covers ``b"QRGATE-LIST1" + canonical JSON of "list"`` (sorted keys, no spaces, ASCII) with
the same issuer key as the event's tickets: HMAC-SHA256 with the per-event key (truncated to 16 bytes,
like a ticket tag) or Ed25519.  So a gate trusts a list exactly as far as it trusts a ticket, and a list
altered on the way (or signed for another event) is refused as a whole with a clear error.

What a caller may rely on:

* `CheckinList` is frozen and validated on construction: every field is in range or `RulesError` names
  the field; `from_source` reads the TOML an issuer writes (times as TOML datetimes or unix seconds).
* `version` grows with every change the issuer signs; a gate records the (name, version) it decided with
  on every scan (the audit log's ``detail``) and never replaces a list by an older version.
* `load` verifies the signature against the gate's keyring before anything is used.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import json
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gate.exc import GateError
from gate.keys import IssuerKey, Keyring, derive_event_key
from gate.ticket import MAX_FIELD

LIST_FORMAT = "qrgate-checkin-list/1"
LIST_CONTEXT = b"QRGATE-LIST1"
MAX_LIST_BYTES = 256 * 1024


#: every UTC offset in use today, and every change between them, falls on a quarter hour (tests/test_rules.py
#: checks zones with :30 and :45 offsets and a 30-minute DST shift), so the venue's day is the same all through
#: one UTC quarter hour: it is worked out once per quarter (the time zone conversion is the costly part of a
#: once-a-day decision, bench/decide.py)
QUARTER = 900


@functools.lru_cache(maxsize=4096)
def _day_of(zone: ZoneInfo, quarter: int) -> str:
    return dt.datetime.fromtimestamp(quarter * QUARTER, zone).date().isoformat()


class RulesError(GateError, ValueError):
    """A check-in list that is malformed, out of range, unsigned or signed by a key the gate does not trust."""


@dataclass(frozen=True)
class CheckinList:
    """One list (an entrance, an area): what it admits and its entry policy.

    `entries` is the most entries a ticket has (per venue day when `per_day`; 0: no limit); `reentry`
    lets a ticket that left through an exit come back without spending an entry (and refuses a second
    entry while it is inside: already_inside); `min_gap` is the minutes required between two entries;
    `windows` are [start, end) unix-second ranges (empty: always open); `capacity` is the most tickets
    inside at once, enforced where the inside count is exact (the arbiter; 0: none).
    """

    name: str
    event: str
    version: int = 1
    products: tuple[str, ...] = ()
    windows: tuple[tuple[int, int], ...] = ()
    timezone: str = "UTC"
    entries: int = 1
    per_day: bool = False
    reentry: bool = False
    min_gap: int = 0
    capacity: int = 0
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for what, text in (("name", self.name), ("event", self.event)):
            _check_text(what, text)
        for product in self.products:
            _check_text("products", product)
        for what, n in (("version", self.version), ("entries", self.entries), ("min_gap", self.min_gap),
                        ("capacity", self.capacity)):
            if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 2**31:
                raise RulesError(f"list {self.name!r}: {what} must be a whole number 0..2^31, not {n!r}")
        if self.version < 1:
            raise RulesError(f"list {self.name!r}: version must be at least 1")
        for start, end in self.windows:
            if not 0 <= start < end:
                raise RulesError(f"list {self.name!r}: window {start}..{end} is empty or negative")
        try:
            object.__setattr__(self, "_zone", ZoneInfo(self.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise RulesError(f"list {self.name!r}: unknown time zone {self.timezone!r}") from None

    @property
    def ref(self) -> str:
        """How a scan's audit row names the list it was decided by: ``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def admits_product(self, product: str) -> bool:
        return not self.products or product in self.products

    def open_at(self, at: float) -> bool:
        return not self.windows or any(start <= at < end for start, end in self.windows)

    def day(self, at: float) -> str:
        """The venue's calendar day of `at` (ISO date in `timezone`): the boundary of `per_day`."""
        return _day_of(self._zone, int(at // QUARTER))

    def local(self, at: float) -> str:
        """`at` as the venue's wall-clock time, for reasons shown to people."""
        return dt.datetime.fromtimestamp(at, self._zone).strftime("%Y-%m-%d %H:%M")

    def next_day_starts(self, at: float) -> float:
        today = dt.datetime.fromtimestamp(at, self._zone).date()
        midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), self._zone)
        return midnight.timestamp()

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_zone", None)
        d["products"], d["windows"] = list(self.products), [list(w) for w in self.windows]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "list") -> CheckinList:
        """A list from its JSON fields; RulesError naming `where` for a missing, unknown or wrong field."""
        if not isinstance(d, Mapping):
            raise RulesError(f"{where}: a list must be a table of fields")
        known = {"name", "event", "version", "products", "windows", "timezone", "entries", "per_day",
                 "reentry", "min_gap", "capacity"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise RulesError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        for key in ("name", "event"):
            if key not in d:
                raise RulesError(f"{where}: the field {key!r} is required")
        try:
            return cls(
                name=_typed(d, "name", str), event=_typed(d, "event", str),
                version=_typed(d, "version", int, 1),
                products=tuple(_typed(d, "products", list, [])),
                windows=tuple(_window(w) for w in _typed(d, "windows", list, [])),
                timezone=_typed(d, "timezone", str, "UTC"), entries=_typed(d, "entries", int, 1),
                per_day=_typed(d, "per_day", bool, False), reentry=_typed(d, "reentry", bool, False),
                min_gap=_typed(d, "min_gap", int, 0), capacity=_typed(d, "capacity", int, 0),
            )
        except RulesError as exc:
            raise RulesError(f"{where}: {exc}") from None

    @classmethod
    def from_source(cls, path: Path) -> list[CheckinList]:
        """The lists of an issuer's TOML file: one ``[[list]]`` table each."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise RulesError(f"{path}: cannot read check-in lists: {exc}") from None
        tables = data.get("list")
        if not isinstance(tables, list) or not tables:
            raise RulesError(f"{path}: no [[list]] tables")
        lists = [cls.from_json(t, f"{path} [[list]] #{i + 1}") for i, t in enumerate(tables)]
        names = [lst.name for lst in lists]
        if len(set(names)) != len(names):
            raise RulesError(f"{path}: a list name appears twice")
        return lists


def _check_text(what: str, text: object) -> None:
    if not isinstance(text, str) or not 1 <= len(text.encode()) <= MAX_FIELD or any(ord(c) < 32 for c in text):
        raise RulesError(f"{what} must be 1..{MAX_FIELD} bytes of text without control characters, not {text!r}")


def _typed(d: Mapping[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = d.get(key, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RulesError(f"the field {key!r} must be {kind.__name__}, not {value!r}")
    return value


def _window(w: Any) -> tuple[int, int]:
    if not isinstance(w, list | tuple) or len(w) != 2:
        raise RulesError(f"a window must be [start, end], not {w!r}")
    return (_seconds(w[0]), _seconds(w[1]))


def _seconds(t: Any) -> int:
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            raise RulesError(f"window time {t} has no UTC offset (write e.g. 2026-07-01T10:00:00+02:00)")
        return int(t.timestamp())
    if isinstance(t, int) and not isinstance(t, bool):
        return t
    raise RulesError(f"window time must be a datetime with offset or unix seconds, not {t!r}")


# signing ---------------------------------------------------------------------------------------------
def canonical(lst: CheckinList) -> bytes:
    return json.dumps(lst.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(lst: CheckinList, key: IssuerKey) -> dict[str, Any]:
    """The signed document of `lst` under the issuer key of its event."""
    if key.event != lst.event:
        raise RulesError(f"key {key.kid} is for event {key.event!r}, the list {lst.name!r} for {lst.event!r}")
    message = LIST_CONTEXT + canonical(lst)
    if key.scheme == "hmac":
        tag = hmac.new(derive_event_key(key.secret, key.event), message, sha256).digest()[:16]
    else:
        tag = Ed25519PrivateKey.from_private_bytes(key.secret).sign(message)
    return {"format": LIST_FORMAT, "kid": key.kid, "scheme": key.scheme, "list": lst.to_json(), "sig": tag.hex()}


def verify(doc: Any, keyring: Keyring, where: str = "list") -> CheckinList:
    """The list of a signed document, or RulesError saying why it is not trusted."""
    if not isinstance(doc, Mapping) or doc.get("format") != LIST_FORMAT:
        raise RulesError(f"{where}: not a signed check-in list (format {LIST_FORMAT!r} expected)")
    lst = CheckinList.from_json(doc.get("list", {}), where)
    kid, sig = str(doc.get("kid", "")), str(doc.get("sig", ""))
    key = keyring.get(kid)
    if key is None or key.retired:
        raise RulesError(f"{where}: signed by key {kid!r}, which this gate's keyring does not hold (or retired)")
    if key.event != lst.event or key.scheme != doc.get("scheme"):
        raise RulesError(f"{where}: key {kid} is a {key.scheme} key for event {key.event!r}, the list says "
                         f"{doc.get('scheme')!r} for {lst.event!r}")
    try:
        tag = bytes.fromhex(sig)
    except ValueError:
        raise RulesError(f"{where}: the signature is not hex") from None
    message = LIST_CONTEXT + canonical(lst)
    if not _good(key.scheme, key.material, message, tag):
        raise RulesError(f"{where}: bad signature (the list was changed after signing, or signed with another key)")
    return lst


def _good(scheme: str, material: bytes, message: bytes, tag: bytes) -> bool:
    if scheme == "hmac":
        return hmac.compare_digest(hmac.new(material, message, sha256).digest()[:16], tag)
    try:
        Ed25519PublicKey.from_public_bytes(material).verify(tag, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def load(path: Path, keyring: Keyring) -> CheckinList:
    """Read and verify one signed list file."""
    return load_document(path, keyring)[0]


def load_document(path: Path, keyring: Keyring) -> tuple[CheckinList, dict[str, Any]]:
    """Read and verify one signed list file: (its list, the signed document as the file holds it)."""
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_LIST_BYTES:
            raise RulesError(f"{path}: {len(raw)} bytes is too big for a check-in list")
        doc = json.loads(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RulesError(f"{path}: cannot read the check-in list: {exc}") from None
    return verify(doc, keyring, str(path)), doc
