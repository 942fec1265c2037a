"""The dashboard process: its MQTT side (service.py), the live view (model.py), its history file (history.py)
and the web server (server.py, static/).  See docs/dashboard.md."""
