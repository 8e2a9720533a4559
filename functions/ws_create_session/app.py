"""WebSocket createSession: the legacy way to create a session, kept for existing
clients while LegacyWebSocketSessionCreation is enabled (LegacySessionCreation and
LegacyProtocolMessage metrics), answered in their own format (session_core.api.legacy)."""

from session_core.api import legacy
from session_core.api.ws import ws_handler

lambda_handler = ws_handler(legacy.create_session)
