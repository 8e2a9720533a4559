"""POST /sessions: create a broadcast session owned by the caller."""

from session_core.api.http import caller_id, http_app, http_handler, parse_body, session_response
from session_core.models import CreateSessionRequest
from session_core.usecases import sessions

app = http_app()


@app.post("/sessions")
def create_session():
    session = sessions.create_session(caller_id(app), parse_body(app, CreateSessionRequest),
                                      app.current_event.headers.get("idempotency-key"), app.lambda_context)
    location = f"{app.current_event.raw_path.rstrip('/')}/{session.sessionId}"
    return session_response(session, 201, {"Location": location})


lambda_handler = http_handler(app)
