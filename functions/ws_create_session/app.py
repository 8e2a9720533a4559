"""WebSocket createSession: the legacy way to create a session, kept for existing
clients while LegacyWebSocketSessionCreation is enabled (LegacySessionCreation and
LegacyProtocolMessage metrics), answered in their own format (session_core.api.dialects.renamed)."""

from session_core.api import dialects
from session_core.api.ws import ws_handler
from session_core.domain import NATIVE

lambda_handler = ws_handler(dialects.answer)

dialects.preload(NATIVE)  # the common one, at init
