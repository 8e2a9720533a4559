"""Delivers the message a client waits for right after its handshake, and the session's state in the
connection's dialect, once API Gateway has established the connection (session_core.usecases.welcome):
invoked asynchronously by $connect."""

from session_core.api import dialects
from session_core.api.events import welcome_step

lambda_handler = welcome_step(dialects.welcome_messages)
