"""Audio slice worker: the chunks the fan-out handed over for one slice of a crowd's listeners, posted to each
of them in order, each in its connection's dialect (usecases/slices.py)."""

from session_core.api import dialects
from session_core.api.events import stream_consumer
from session_core.domain import NATIVE
from session_core.usecases import slices

lambda_handler = stream_consumer(lambda records: slices.post(records, dialects.audio_message))

dialects.preload(NATIVE)  # the common one, at init
