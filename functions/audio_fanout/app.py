"""Audio stream consumer: each chunk of the speaker's audio (the floor) and of the pipeline's translated audio
posted, in order, to the listeners of its language, each in its connection's dialect."""

from session_core.api import dialects
from session_core.api.events import stream_consumer
from session_core.domain import NATIVE
from session_core.usecases import listening

lambda_handler = stream_consumer(lambda records: listening.deliver(records, dialects.audio_message))

dialects.preload(NATIVE)  # the common one, at init
