"""Table stream consumer: tells every socket of a session its new status and listener count."""

from session_core.broadcast import broadcast, changed_sessions
from session_core.observability import logger, observed


@observed()
def lambda_handler(event: dict, context) -> None:
    for session_id, message in changed_sessions(event.get("Records", [])).items():
        sent, gone = broadcast(session_id, message)
        logger.info("status broadcast", extra={"sessionId": session_id, "sent": sent, "gone": gone})
