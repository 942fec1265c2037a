"""Ownership on back-step chains: holder codes at the gate, the box office, wallets, payment agents.

Only the light, gate-side names are handed on here (the gate imports this
package on every scan path); the services live in their modules:
gate.chain.boxoffice, gate.chain.wallet, gate.chain.payment.
See docs/ownership.md.
"""

from gate.chain.backstep import Ladder, anchor_of, code_salt, forward, reaches
from gate.chain.exc import ChainError
from gate.chain.rotating import Code, HolderTerms, check, present, split, terms_of

__all__ = [
    "ChainError", "Code", "HolderTerms", "Ladder", "anchor_of", "check", "code_salt", "forward", "present",
    "reaches", "split", "terms_of",
]
