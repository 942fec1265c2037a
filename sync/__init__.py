"""qrgate sync: multi-gate single use over MQTT v5 with a central compare-and-set arbiter (docs/mqtt.md).

One package per process over a shared core:

* the core, used by every process: wire.py (payloads), topics.py, link.py (one MQTT v5 connection),
  follower.py (catching up with the stream), admin.py (admin requests), counters.py, exc.py;
* gateside/: what a gate daemon runs (the arbiter link, the claim step, the dashboards' feed);
* arbiter/: the central compare-and-set and its store;
* dashboard/: the admins' live page, its model and its history.

Nothing is imported here: importing a pure module (sync.wire) costs only what it uses.
"""
