"""DELETE /sessions/{sessionId}: end the session (owner only, idempotent)."""

from session_core.api.http import Response, caller_id, http_app, http_handler
from session_core.usecases import sessions

app = http_app()


@app.delete("/sessions/<session_id>")
def delete_session(session_id: str):
    sessions.end_session(session_id, caller_id(app))
    return Response(204)


lambda_handler = http_handler(app)
