"""WebSocket pause / resume from the speaker (same rules as PATCH /sessions/{id}); also the old
clients' pauseBroadcast / resumeBroadcast, the same messages in their words (session_core.api.legacy)."""

from session_core.api import legacy
from session_core.api.ws import require_speaker, ws_handler
from session_core.domain import ACTIVE, PAUSED
from session_core.usecases import audio, membership

STATUS_FOR = {"pause": PAUSED, "resume": ACTIVE}


def control(request):
    if request.route_key in legacy.STATUS_FOR:
        session = legacy.control(request)
    else:
        require_speaker(request)
        session_id = membership.session_of(request.connection_id, request.connection)
        session = audio.set_status(session_id, request.connection.userId, STATUS_FOR[request.route_key])
    return {"type": "status", "sessionId": session.sessionId, "status": session.status,
            "listenerCount": session.listenerCount}


lambda_handler = ws_handler(control)
