"""WebSocket $connect: records the admitted connection (the listener cap is enforced here, atomically)."""

from session_core import membership
from session_core.ws import ws_handler


def connect(request):
    membership.join(request.connection_id, request.connection)


lambda_handler = ws_handler(connect, refuse_on_error=True)
