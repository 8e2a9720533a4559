"""Table stream consumer: tells every socket of a session its new status and listener count."""

from session_core.broadcast import broadcast, changed_sessions
from session_core.observability import logger, observed


@observed()
def lambda_handler(event: dict, context) -> None:
    records = event.get("Records", [])
    changed = changed_sessions(records)
    sent = gone = 0
    for session_id, message in changed.items():
        delivery = broadcast(session_id, message)
        sent, gone = sent + delivery.sent, gone + delivery.gone
        logger.info("status broadcast", extra={"sessionId": session_id, **delivery._asdict()})
    logger.info("request", extra={"records": len(records), "sessions": len(changed), "sent": sent, "gone": gone})
