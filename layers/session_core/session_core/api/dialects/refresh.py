"""Asking the published clients to refresh their connection before API Gateway closes it at 2 hours.

The old protocol and the hybrid front-end open a new connection when told connectionRefreshRequired
(the old clients with ?action=refreshConnection, answered connectionRefreshComplete); the old ones
also show connectionWarning. The heartbeat carries the reminder, so it costs nothing before the
refresh age and needs no timer. This service's own clients rotate by themselves (client/README.md).
Kept apart from the dialect modules: the heartbeat function starts without the AWS SDK and pydantic.
"""

from __future__ import annotations

import time

from ...domain import HYBRID, OLD
from ...platform.settings import settings
from ..ws import WsRequest

API_GATEWAY_LIFETIME_SECONDS = 2 * 3600
_REMINDED = (HYBRID, OLD)
_WARNED = (OLD,)
WARNING_SECONDS = 105 * 60  # the old design's connectionWarning threshold


def reminders(request: WsRequest) -> list[dict]:
    """What a heartbeat on this connection should also tell it (nothing before the refresh age)."""
    who = request.connection
    if who.dialect not in _REMINDED or not request.connected_at_ms:
        return []
    now = int(time.time() * 1000)
    age = (now - request.connected_at_ms) / 1000
    if age < settings().connection_refresh_seconds:
        return []
    closes_at = request.connected_at_ms + API_GATEWAY_LIFETIME_SECONDS * 1000
    told = [{"type": "connectionRefreshRequired", "sessionId": who.sessionId or None, "role": who.role,
             "targetLanguage": who.targetLanguage or None, "refreshBy": closes_at,
             "message": "Open a new connection to continue the session.", "timestamp": now}]
    if who.dialect in _WARNED and age >= WARNING_SECONDS:
        remaining = max(0.0, (closes_at - now) / 60000)
        told.append({"type": "connectionWarning", "remainingMinutes": round(remaining, 1),
                     "message": f"Connection will expire in {remaining:.0f} minutes", "timestamp": now})
    return told


def remind(request: WsRequest) -> None:
    """Posts the reminders, if any, to the connection (beside the heartbeat's own answer)."""
    told = reminders(request)
    if not told:
        return
    from ...platform import management  # the AWS SDK: only past the refresh age

    for message in told:
        management.offer(request.connection_id, message)
