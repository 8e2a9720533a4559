"""WebSocket $disconnect: forgets the connection; the session stays."""

from session_core import membership
from session_core.ws import ws_handler


def disconnect(request):
    membership.leave(request.connection_id, request.connection)


lambda_handler = ws_handler(disconnect)
