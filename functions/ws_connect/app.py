"""WebSocket $connect: records the admitted connection (the listener cap is enforced here, atomically)."""

from session_core import membership
from session_core.ws import ws_handler


def connect(request):
    membership.join(request.connection_id, request.connection)


# Counted like the authorizer's refusals: a cached session lookup lets the
# authorizer admit what this conditional write then refuses (admission.py).
lambda_handler = ws_handler(connect, refuse_on_error=True, refusal_metric="ConnectionRefused")
