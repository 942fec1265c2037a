"""The exceptions of the `sync` package: one hierarchy under GateError, each mixing in a builtin."""

from __future__ import annotations

from gate.exc import GateError


class SyncError(GateError):
    """Base of every error raised on purpose by the sync package."""


class BrokerURLError(SyncError, ValueError):
    """A broker URL that is not mqtt://host[:port] or mqtts://host[:port]."""


class BadMessage(SyncError, ValueError):
    """An MQTT payload that does not follow docs/mqtt.md (counted and dropped, never applied)."""


class BadTopicName(SyncError, ValueError):
    """A gate id or prefix that cannot be a topic level (empty, or holding '/', '+' or '#')."""


class ArbiterStoreError(SyncError, OSError):
    """The arbiter's store cannot commit (disk full, read-only, corrupt): it answers nothing."""
