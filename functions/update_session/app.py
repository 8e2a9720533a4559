"""PATCH /sessions/{sessionId}: change status or settings (owner only)."""

from session_core.api.http import caller_id, expected_version, http_app, http_handler, parse_body, session_response
from session_core.models import UpdateSessionRequest
from session_core.usecases import sessions

app = http_app()


@app.patch("/sessions/<session_id>")
def update_session(session_id: str):
    request = parse_body(app, UpdateSessionRequest)
    return session_response(sessions.update_session(session_id, caller_id(app), request, expected_version(app)))


lambda_handler = http_handler(app)
