"""The gate daemon: the scan loop (scanloop.py), `gate run` (run.py), sd_notify (sdnotify.py), signals."""
