"""Ownership on back-step chains: the box office, holders' wallets, payment agents (docs/ownership.md).

The parties and their protocol: block.py (the wire format), seal.py (per-pair payload keys), party.py (a
party's chain), ladder.py (its back-step values), protocol.py (the flows' vocabulary), boxoffice.py,
wallet.py, payment.py, webpage.py (the wallet page), store.py (every write to the parties' files).

What a gate needs to check a holder's code is not here: it sits beside the ticket format, in gate/holder.py
and gate/backstep.py.  The gate core never imports this package.
"""
