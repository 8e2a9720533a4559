"""GET /sessions/{sessionId}: read one session (its join key only for its owner)."""

from session_core.api.http import caller_id, http_app, http_handler, session_response
from session_core.usecases import sessions

app = http_app()


@app.get("/sessions/<session_id>")
def get_session(session_id: str):
    return session_response(sessions.get_session(session_id, caller_id(app)))


lambda_handler = http_handler(app)
