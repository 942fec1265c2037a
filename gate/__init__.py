"""qrgate: signed tickets, the decision core and the local store."""

from gate.decide import Decider, Decision
from gate.exc import GateError
from gate.keys import IssuerKey, Keyring, KeyStore, VerifyKey
from gate.outcomes import Outcome, Reason
from gate.store import Store
from gate.ticket import Ticket
from gate.verify import Verifier

__version__ = "0.1.0"

__all__ = [
    "Decider", "Decision", "GateError", "IssuerKey", "KeyStore", "Keyring", "Outcome", "Reason",
    "Store", "Ticket", "Verifier", "VerifyKey", "__version__",
]
