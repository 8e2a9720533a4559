"""WebSocket $disconnect: forgets the connection; the session stays."""

from session_core.api.ws import ws_handler
from session_core.usecases import membership


def disconnect(request):
    membership.leave(request.connection_id, request.connection)


lambda_handler = ws_handler(disconnect)
