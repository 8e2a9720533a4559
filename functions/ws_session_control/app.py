"""WebSocket pause, resume, mute, unmute (same rules as PATCH /sessions/{id}), and the published clients'
names for them and for ending the session, in the connection's dialect (session_core.api.dialects)."""

from session_core.api import dialects
from session_core.api.ws import ws_handler
from session_core.domain import NATIVE

lambda_handler = ws_handler(dialects.answer)

dialects.preload(NATIVE)  # the common one, at init
