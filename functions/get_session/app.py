"""GET /sessions/{sessionId}: read one session."""

from session_core.api.http import http_app, http_handler, session_response
from session_core.usecases import sessions

app = http_app()


@app.get("/sessions/<session_id>")
def get_session(session_id: str):
    return session_response(sessions.get_session(session_id))


lambda_handler = http_handler(app)
