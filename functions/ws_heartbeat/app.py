"""WebSocket heartbeat: answers at once, keeping API Gateway's 10-minute idle timeout away."""

import time

from session_core.api.ws import ws_handler


def heartbeat(request):
    return {"type": "heartbeatAck", "serverTime": int(time.time() * 1000)}


lambda_handler = ws_handler(heartbeat)
