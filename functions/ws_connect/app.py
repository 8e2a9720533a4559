"""WebSocket $connect: records the admitted connection, as its dialect does (session_core.api.dialects).
Its conditional write is where a handshake is refused for the session: missing, ended, expired, full, or
(for a speaker) someone else's; the authorizer does not read the session."""

from session_core.api import dialects
from session_core.api.ws import ws_handler
from session_core.domain import NATIVE

# Refusals are counted by reason (ConnectionRefused) and logged, like the authorizer's.
lambda_handler = ws_handler(dialects.connect, refuse_on_error=True, refusal_metric="ConnectionRefused")

dialects.preload(NATIVE)  # the common one, at init
