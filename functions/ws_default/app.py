"""WebSocket $default: frames that are not JSON or name no known action."""

from session_core import errors
from session_core.api.ws import ws_handler


def unknown(request):
    message = request.message()  # raises INVALID_MESSAGE for non-JSON frames
    raise errors.UnknownAction() if "action" in message else errors.InvalidMessage()


lambda_handler = ws_handler(unknown)
