"""GET /sessions/{sessionId}: read one session."""

from session_core import sessions
from session_core.http import http_app, http_handler, session_response

app = http_app()


@app.get("/sessions/<session_id>")
def get_session(session_id: str):
    return session_response(sessions.get_session(session_id))


lambda_handler = http_handler(app)
