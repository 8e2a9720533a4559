"""Referenced audio: about 2 s of each (session, language)'s audio, the floor's and the pipeline's, stored once
as a chunk, and its URL posted to the listeners who get referenced chunks, each in its connection's dialect."""

from session_core.api import dialects
from session_core.api.events import stream_consumer
from session_core.domain import HYBRID
from session_core.usecases import referenced

lambda_handler = stream_consumer(lambda records: referenced.deliver(records, dialects.referenced_message))

dialects.preload(HYBRID)  # the dialect whose listeners get referenced chunks, at init
