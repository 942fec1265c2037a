"""The arbiter process: the central compare-and-set (service.py), its store (store.py, schema.py)."""
