"""qrgate sync: multi-gate single use over MQTT v5 with a central compare-and-set arbiter (docs/mqtt.md)."""

from sync.arbiter import Arbiter
from sync.arbiter_store import ArbiterStore
from sync.claimer import GateClaimer
from sync.exc import ArbiterStoreError, BadMessage, BadTopicName, BrokerURLError, SyncError
from sync.gateside import GateSync
from sync.ledger import Ledger
from sync.link import Broker, Credentials, Link
from sync.topics import Topics

__all__ = [
    "Arbiter", "ArbiterStore", "ArbiterStoreError", "BadMessage", "BadTopicName", "Broker", "BrokerURLError",
    "Credentials", "GateClaimer", "GateSync", "Ledger", "Link", "SyncError", "Topics",
]
