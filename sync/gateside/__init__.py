"""The gate side of sync: the arbiter link (session.py), the claim step (claimer.py), the dashboards' feed."""
