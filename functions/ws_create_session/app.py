"""WebSocket createSession: the legacy way to create a session, kept for existing
clients while LegacyWebSocketSessionCreation is enabled (LegacySessionCreation metric)."""

from session_core import membership
from session_core.models import CreateSessionRequest
from session_core.validation import validated
from session_core.ws import ws_handler


def create_session(request):
    message = {k: v for k, v in request.message().items() if k != "action"}
    session = membership.create_legacy_session(request.connection_id, request.connection,
                                               validated(CreateSessionRequest, message))
    return {"type": "sessionCreated", **session.model_dump(mode="json", exclude_none=True)}


lambda_handler = ws_handler(create_session)
