"""WebSocket heartbeat: answers at once, keeping API Gateway's 10-minute idle timeout away; past the refresh
age, the published clients are also asked to refresh their connection (session_core.api.dialects.refresh)."""

import time

from session_core.api.dialects import refresh
from session_core.api.ws import ws_handler


def heartbeat(request):
    refresh.remind(request)
    return {"type": "heartbeatAck", "serverTime": int(time.time() * 1000)}


lambda_handler = ws_handler(heartbeat)
