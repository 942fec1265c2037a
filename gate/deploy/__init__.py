"""Deploying a venue: provisioning (provision.py), the venue CA (pki.py), broker credentials (mqttauth.py)."""
