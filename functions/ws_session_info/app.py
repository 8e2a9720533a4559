"""WebSocket getSessionStatus, joinSession, switchLanguage/changeLanguage and refreshConnection: the published
clients' questions about their session and a listener's language (session_core.api.dialects)."""

from session_core.api import dialects
from session_core.api.ws import ws_handler
from session_core.domain import NATIVE

lambda_handler = ws_handler(dialects.answer)

dialects.preload(NATIVE)  # the common one, at init
