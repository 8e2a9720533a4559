"""WebSocket sendAudio: {"action": "sendAudio", "seq": 17, "data": "<base64>"} from the speaker."""

from session_core import audio, membership
from session_core.ws import require_speaker, ws_handler


def send_audio(request):
    require_speaker(request)
    seq, data, _ = audio.parse_chunk(request.message())  # validated, and within the size limit
    audio.receive(membership.session_of(request.connection_id, request.connection), seq, data)


# Every refused chunk counts AudioRefused with the error code as its reason.
lambda_handler = ws_handler(send_audio, refusal_metric="AudioRefused")
