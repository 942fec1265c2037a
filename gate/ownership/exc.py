"""The exceptions of gate.ownership: one hierarchy, each with a stable `code` and a builtin mixed in.

A caller (the CLI, a test, a web handler) may rely on `err.code` being one of
the strings documented in docs/ownership.md ("Results"); the message is prose
for people and may change.
"""

from __future__ import annotations

from gate.exc import GateError


class ChainError(GateError):
    """Base of every error raised on purpose by gate.ownership."""

    code = "chain_error"


class MalformedBlock(ChainError, ValueError):
    """A block, message or payload that does not follow the documented format."""

    code = "malformed"


class UnknownChain(ChainError, LookupError):
    """A block from a chain whose identity block this party has never seen."""

    code = "unknown_chain"


class ForgedIdentity(ChainError, ValueError):
    """An identity that does not hold: its id is not the hash of its content, or the
    first block shown for it does not step back to its anchor (no proof of the seed)."""

    code = "forged_identity"


class BadBackStep(ChainError, ValueError):
    """A block whose back-step value does not hash forward to the chain's last verified value."""

    code = "bad_backstep"


class Replayed(ChainError, ValueError):
    """A block whose index is not past the last verified one of its chain (an old value again)."""

    code = "replayed"


class BadSeal(ChainError, ValueError):
    """A payload that does not open with the application key of its sender and this party."""

    code = "bad_seal"


class NotForMe(ChainError, ValueError):
    """A block addressed to another party."""

    code = "not_for_me"


class WrongChain(ChainError, ValueError):
    """A genuine block from a chain that is not the one this step needs (not the holder,
    not a trusted payment agent, not our box office)."""

    code = "wrong_chain"


class BadSignature(ChainError, ValueError):
    """A catalog whose signature does not verify under its box office's published key, or is unsigned."""

    code = "bad_signature"


class Unreachable(ChainError, ConnectionError):
    """A box office or payment agent that did not answer over the network (try again: every request is idempotent)."""

    code = "unreachable"


class ChainExhausted(ChainError, RuntimeError):
    """A chain has used every back-step value it has: make a new identity."""

    code = "chain_exhausted"


class Refused(ChainError, ValueError):
    """A step the box office, a wallet or an agent will not take; `code` says why.

    `reply` holds blocks written anyway (a timeout block for a late payment), to be delivered.
    """

    def __init__(self, code: str, message: str, reply: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply


class ChainStoreError(ChainError, OSError):
    """A party's SQLite file cannot be opened, read or written."""

    code = "store_fault"
