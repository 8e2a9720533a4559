"""WebSocket $connect authorizer: admits a speaker or listener by token, role and session ID, in the dialect
its query speaks (session_core.api.dialects).

It reads the session only to tell a speaker from a listener when the query names no role; $connect's
conditional write refuses a missing, ended, full or foreign session, also with 403
(session_core.usecases.admission). How refusals are answered, logged and counted: session_core.api.authorizer.
"""

from session_core.api import dialects
from session_core.api.authorizer import authorizer_handler

lambda_handler = authorizer_handler(dialects.admit)
