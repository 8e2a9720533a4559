"""WebSocket $connect: records the admitted connection. Its conditional write is
where a handshake is refused for the session: missing, ended, expired, full, or
(for a speaker) someone else's; the authorizer does not read the session."""

from session_core.api.ws import ws_handler
from session_core.usecases import membership


def connect(request):
    membership.join(request.connection_id, request.connection)


# Refusals are counted by reason (ConnectionRefused) and logged, like the authorizer's.
lambda_handler = ws_handler(connect, refuse_on_error=True, refusal_metric="ConnectionRefused")
