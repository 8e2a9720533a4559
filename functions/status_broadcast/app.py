"""Table stream consumer: tells every socket of a session its new status and listener count."""

from session_core.api.events import stream_consumer
from session_core.usecases import broadcast

lambda_handler = stream_consumer(broadcast.broadcast_changes)
