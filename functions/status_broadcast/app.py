"""Table stream consumer: tells every socket of a session its new status, listener count or mute, each in its
connection's dialect."""

from session_core.api import dialects
from session_core.api.events import stream_consumer
from session_core.domain import NATIVE
from session_core.usecases import broadcast

lambda_handler = stream_consumer(lambda records: broadcast.broadcast_changes(records, dialects.status_message))

dialects.preload(NATIVE)  # the common one, at init
