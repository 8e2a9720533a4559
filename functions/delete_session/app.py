"""DELETE /sessions/{sessionId}: end the session (owner only, idempotent)."""

from aws_lambda_powertools.event_handler import Response
from session_core.api.http import caller_id, http_app, http_handler
from session_core.usecases import sessions

app = http_app()


@app.delete("/sessions/<session_id>")
def delete_session(session_id: str):
    sessions.end_session(session_id, caller_id(app))
    return Response(204)


lambda_handler = http_handler(app)
