"""The admins' side of sync: the gates' scan feed, the live dashboard, overrides (docs/dashboard.md)."""

from sync.dashboard.feed import GateFeed
from sync.dashboard.history import History, HistoryError
from sync.dashboard.messages import Override, ScanEvent
from sync.dashboard.model import Model
from sync.dashboard.server import AdminPassword, DashboardServer, Hub
from sync.dashboard.service import ActionResult, DashboardService

__all__ = [
    "ActionResult", "AdminPassword", "DashboardServer", "DashboardService", "GateFeed", "History", "HistoryError",
    "Hub", "Model", "Override", "ScanEvent",
]
