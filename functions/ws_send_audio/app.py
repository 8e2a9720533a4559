"""WebSocket sendAudio: {"action": "sendAudio", "seq": 17, "data": "<base64>"} from the speaker;
also the old clients' audioChunk, the same message in their words (session_core.api.legacy)."""

from session_core.api import legacy
from session_core.api.ws import require_speaker, ws_handler
from session_core.usecases import audio, membership


def send_audio(request):
    if request.route_key == legacy.AUDIO_CHUNK:
        return legacy.audio_chunk(request)
    require_speaker(request)
    seq, data, _ = audio.parse_chunk(request.message())  # validated, and within the size limit
    audio.receive(membership.session_of(request.connection_id, request.connection), seq, data)


# Every refused chunk counts AudioRefused with the error code as its reason, and is logged; a forwarded or
# held one is logged at DEBUG only: ten lines a second per speaker would cost more than the compute
# (docs/performance.md).
lambda_handler = ws_handler(send_audio, refusal_metric="AudioRefused", quiet_when_ok=True)
