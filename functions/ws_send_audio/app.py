"""WebSocket sendAudio and audioChunk: the speaker's audio, in the connection's dialect
(session_core.api.dialects): {"action": "sendAudio", "seq": 17, "data": "<base64>"} in this service's own."""

from session_core.api import dialects
from session_core.api.ws import ws_handler
from session_core.domain import NATIVE

# Every refused chunk counts AudioRefused with the error code as its reason, and is logged; a forwarded or
# held one is logged at DEBUG only: ten lines a second per speaker would cost more than the compute
# (docs/performance.md).
lambda_handler = ws_handler(dialects.answer, refusal_metric="AudioRefused", quiet_when_ok=True)

dialects.preload(NATIVE)  # the common one, at init
