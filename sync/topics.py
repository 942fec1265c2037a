"""The topic scheme (docs/mqtt.md is the reference; keep the two in step).

Every topic starts with the configured prefix (``sync.prefix``, default
``qrgate``).  Requests carry their sender's id as the last level so a broker
ACL can pin each gate to its own topics (``pattern write qrgate/claim/%u``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sync.exc import BadTopicName

#: request kinds a gate (or an admin, for revoke and override) sends to the arbiter
REQUESTS = ("claim", "release", "catchup", "revoke", "override")


def check_level(name: str, what: str = "gate id") -> str:
    """Return `name` if it can be one topic level; raise BadTopicName otherwise."""
    if not name or any(c in name for c in "/+#\0"):
        raise BadTopicName(f"{what} {name!r} cannot be an MQTT topic level (empty, or holding / + # or NUL)")
    return name


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix; every method returns a concrete topic or a filter."""

    prefix: str = "qrgate"

    def __post_init__(self) -> None:
        for level in self.prefix.split("/"):
            check_level(level, "topic prefix level")

    def request(self, kind: str, sender: str) -> str:
        """`{prefix}/{kind}/{sender}`: claim, release, catchup (gates and dashboards), revoke or override (admins)."""
        if kind not in REQUESTS:
            raise ValueError(f"unknown request kind {kind!r}")
        return f"{self.prefix}/{kind}/{check_level(sender)}"

    def requests(self, kind: str) -> str:
        """The filter the arbiter subscribes to for one request kind."""
        return f"{self.prefix}/{kind}/+"

    def reply(self, gate: str) -> str:
        """Where the arbiter answers `gate` (the MQTT v5 ResponseTopic of its requests)."""
        return f"{self.prefix}/reply/{check_level(gate)}"

    def status(self, gate: str) -> str:
        """A gate's retained status (online, offline, fault), also its last will."""
        return f"{self.prefix}/status/{check_level(gate)}"

    @property
    def statuses(self) -> str:
        """The filter of every gate's status (dashboards)."""
        return f"{self.prefix}/status/+"

    def scan(self, gate: str) -> str:
        """Every decision of `gate`, for dashboards (sync/dashboard/messages.py documents the payload)."""
        return f"{self.prefix}/scan/{check_level(gate)}"

    @property
    def scans(self) -> str:
        """The filter of every gate's decisions (dashboards)."""
        return f"{self.prefix}/scan/+"

    @property
    def arbiter_status(self) -> str:
        return f"{self.prefix}/arbiter/status"

    def instance_status(self, instance: str = "") -> str:
        """One arbiter instance's retained status: `arbiter_status`, or below it for a named instance (several
        instances on one database: a dead one's last will must not speak for the others)."""
        return f"{self.arbiter_status}/{check_level(instance, 'arbiter instance')}" if instance else self.arbiter_status

    @property
    def instance_statuses(self) -> str:
        """The filter of every arbiter instance's status, the unnamed one's included (gates)."""
        return f"{self.arbiter_status}/#"

    def shared(self, topic_filter: str, group: str = "") -> str:
        """`topic_filter` as a member of the MQTT v5 shared-subscription `group` (each message to one member)."""
        return f"$share/{check_level(group, 'shared-subscription group')}/{topic_filter}" if group else topic_filter

    @property
    def stream(self) -> str:
        """The arbiter's sequence-numbered stream: redemptions, releases, revocations, conflicts."""
        return f"{self.prefix}/stream"

    def conflict(self, event: str) -> str:
        """One message per conflict, double entries and list conflicts (sync.wire.conflict_message; the item is also
        on the stream)."""
        return f"{self.prefix}/conflict/{check_level(event, 'event')}"

    def parse_request(self, topic: str) -> tuple[str, str] | None:
        """(kind, sender) of a request topic, or None if `topic` is not one."""
        head, _, rest = topic.partition(self.prefix + "/")
        if head or "/" not in rest:
            return None
        kind, _, sender = rest.partition("/")
        if kind not in REQUESTS or not sender or "/" in sender:
            return None
        return kind, sender
