"""Home Assistant MQTT discovery for a gate (``sync.ha_discovery = true``; docs/mqtt.md has an example).

A gate announces one sensor per row of SENSORS, each as a retained JSON
config on ``{ha_prefix}/sensor/qrgate_{node}/{key}/config``, where ``node``
is the gate id if it is made of ``[A-Za-z0-9_-]`` (Home Assistant's rule for
node and object ids), else the id with every other character replaced by ``_``
and ``_`` plus the first 8 hex digits of the id's SHA-256 appended, so that
``gate.1`` and ``gate_1`` get different nodes (the broker's ACL lets a gate
write only its own node's configs; provisioning refuses two gates whose nodes
are equal).  Every sensor reads the
gate's own retained status topic (``state_topic``) through a
``value_template``, so there is no second copy of the data.  The counters
are unavailable while the gate is offline; the state sensor then says
``offline``.  The configs are published again on every connect (a broker
without persistence forgets retained messages).
"""

from __future__ import annotations

import hashlib
import re

from gate import __version__
from sync.wire import Json

#: (key, name, value template, extra config)
SENSORS: tuple[tuple[str, str, str, Json], ...] = (
    ("state", "State", "{{ value_json.state }}", {"icon": "mdi:boom-gate"}),
    ("admitted", "Admitted", "{{ value_json.decisions.ADMIT | default(0) }}",
     {"state_class": "total_increasing", "unit_of_measurement": "scans", "icon": "mdi:account-check"}),
    ("rejected", "Rejected",
     "{{ (value_json.decisions.values() | sum) - (value_json.decisions.ADMIT | default(0)) }}",
     {"state_class": "total_increasing", "unit_of_measurement": "scans", "icon": "mdi:account-cancel"}),
    ("outbox", "Outbox backlog", "{{ value_json.outbox.values() | sum }}",
     {"state_class": "measurement", "unit_of_measurement": "entries", "icon": "mdi:tray-full"}),
    ("clock_offset", "Clock offset", "{{ value_json.clock_offset | float(0) | round(3) }}",
     {"state_class": "measurement", "unit_of_measurement": "s", "icon": "mdi:clock-alert-outline"}),
)
#: counters are unknown, not zero, while the gate is offline
AVAILABILITY = "{{ 'offline' if value_json.state == 'offline' else 'online' }}"


def node_id(gate_id: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", gate_id)
    if clean != gate_id:
        clean += "_" + hashlib.sha256(gate_id.encode()).hexdigest()[:8]
    return "qrgate_" + clean


def discovery_configs(gate_id: str, status_topic: str, ha_prefix: str = "homeassistant") -> list[tuple[str, Json]]:
    """(topic, payload) of every sensor config of one gate; publish each retained."""
    node = node_id(gate_id)
    device = {"identifiers": [node], "name": f"qrgate {gate_id}", "manufacturer": "qrgate",
              "model": "QR ticket gate", "sw_version": __version__}
    out = []
    for key, name, template, extra in SENSORS:
        config: Json = {"name": name, "unique_id": f"{node}_{key}", "object_id": f"{node}_{key}",
                        "state_topic": status_topic, "value_template": template, "device": device,
                        "origin": {"name": "qrgate", "sw_version": __version__}, **extra}
        if key != "state":
            config["availability"] = [{"topic": status_topic, "value_template": AVAILABILITY}]
        out.append((f"{ha_prefix}/sensor/{node}/{key}/config", config))
    return out
