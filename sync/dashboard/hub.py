"""Fans the dashboard's pushed events out to every open page (server-sent events).

What a caller may rely on: `publish` never blocks; a page whose queue is full (CLIENT_QUEUE events behind)
is dropped and counted, its stream ended, and its EventSource reconnects and gets the whole state again.
"""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

CLIENT_QUEUE = 2000


class Hub:
    """Fans pushed events out to every open page; a page that cannot keep up is dropped (it reconnects)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: set[queue.Queue[bytes | None]] = set()
        self.dropped = 0

    def subscribe(self) -> queue.Queue[bytes | None]:
        q: queue.Queue[bytes | None] = queue.Queue(CLIENT_QUEUE)
        with self._lock:
            self._clients.add(q)
        return q

    def unsubscribe(self, q: queue.Queue[bytes | None]) -> None:
        with self._lock:
            self._clients.discard(q)

    def publish(self, event: str, data: Any) -> None:
        chunk = sse(event, data)
        with self._lock:
            clients = list(self._clients)
        for q in clients:
            try:
                q.put_nowait(chunk)
            except queue.Full:
                self.dropped += 1
                self.unsubscribe(q)
                with q.mutex:
                    q.queue.clear()
                q.put_nowait(None)  # its handler ends the stream; the page's EventSource reconnects

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients), set()
        for q in clients:
            q.put(None)


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
