"""Domain code shared by every function of the broadcast session service.

Four wings, each importing only the ones below it (docs/architecture.md, "The layer's wings"):

  api/        request and response glue: HTTP, WebSocket, validation, the old clients' vocabulary
  usecases/   what the service does: sessions, admission, membership, broadcast, teardown, audio
  data/       the sessions table: the only code that knows item keys and speaks DynamoDB
  platform/   AWS clients, settings, observability, the Management API, JWT verification

Shared by all of them: domain.py (the service's words and the session), models.py (the request
bodies, checked by pydantic_core), errors.py
(what a caller may see) and session_ids.py.
"""
