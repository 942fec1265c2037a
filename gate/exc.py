"""The exceptions of the `gate` package: one hierarchy, each mixing in a builtin."""

from __future__ import annotations

import errno


class GateError(Exception):
    """Base of every error raised on purpose by the gate package."""


class TicketFormatError(GateError, ValueError):
    """A ticket text or body that does not follow the v1 format."""


class Base45Error(TicketFormatError):
    """Text that is not valid Base45 (RFC 9285)."""


class KeyError_(GateError, LookupError):
    """A key id that is unknown, retired or of the wrong kind."""


class NoIssuerKey(KeyError_):
    """Minting was asked for an event that has no active issuer key."""


class KeyFileError(GateError, OSError):
    """A key file that cannot be read, written or parsed."""


class ConfigError(GateError, ValueError):
    """A config value that is missing, of the wrong type or out of range.

    The message always names the file (or environment variable / option) and
    the key, and says what was expected.
    """


class StoreError(GateError, OSError):
    """The local store cannot record a scan (disk full, read-only, corrupt)."""


class StoreCorrupt(StoreError):
    """The store failed its integrity check at open."""


class CannotListen(GateError, OSError):
    """A server cannot listen on its address: the message names the address, the port and why (`because`)."""

    @classmethod
    def because(cls, host: str, port: int, exc: OSError) -> CannotListen:
        why = ("the port is in use: another process listens there (stop it, or choose another port)"
               if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc))
        return cls(f"cannot listen on {host or '0.0.0.0'}:{port}: {why}")
