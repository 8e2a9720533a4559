"""WebSocket $connect authorizer: admits a speaker or listener by token, role and session ID.

It does not read the session: $connect's conditional write refuses a missing, ended, full or
foreign session, also with 403 (session_core.usecases.admission). How refusals are answered,
logged and counted: session_core.api.authorizer.
"""

from session_core.api.authorizer import authorizer_handler
from session_core.usecases import admission

lambda_handler = authorizer_handler(admission.admit)
