"""Who may open a WebSocket connection, decided once at $connect by the
Lambda authorizer:

- speaker: a valid token and a well-formed sessionId; or, while legacy creation
  is enabled, no sessionId at all (the connection may then create its session
  with a createSession message);
- listener: a valid token, or none while anonymous listeners are allowed; a
  well-formed sessionId and a supported target language, if any;
- no role given (the published clients name none): the session's owner, by its
  token, is its speaker; anyone else a listener. This is the only case in which
  the authorizer reads the session (its owner, one GetItem).

Whether the session exists, is live, has room and (for a speaker) is the token
user's is decided by $connect's conditional write, which refuses with 403 too.
Token problems are Unauthorized (401); everything else is a refusal with a
reason (403). The reason goes to the log, never to the caller.
"""

from __future__ import annotations

from .. import errors
from ..domain import DELIVERIES, LISTENER, NATIVE, OLD, SPEAKER, SUPPORTED_LANGUAGES, ConnectionContext
from ..platform.auth import InvalidToken, configured_verifier
from ..platform.settings import settings
from ..session_ids import is_valid_session_id

# The authorizer does not read the session when the role is named. $connect's single
# conditional write checks, atomically, everything a read here could: the session exists, is
# not ended or expired, has room under the listener cap, and (for a speaker) is the token
# user's. A refused $connect fails the handshake with 403 exactly as a Deny does, so the client
# sees the same answer, and the authorizer starts without the AWS SDK (docs/architecture.md,
# "WebSocket refusals").


class Refused(errors.ServiceError, status=403, code="CONNECTION_REFUSED"):
    """A refused handshake; `reason` (an error code) goes to the log and the ConnectionRefused metric, never to
    the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


def user_of(token: str | None) -> str:
    try:
        return configured_verifier().verify(token)["sub"]
    except InvalidToken as exc:
        raise errors.Unauthorized(str(exc)) from None


def admit(query: dict[str, str], authorization_header: str | None = None, *, dialect: str = NATIVE,
          bound: bool = False) -> ConnectionContext:
    """The connection context for this query. `bound`: a speaker connection whose session ends with it
    (the old protocol's speakers)."""
    token = query.get("token") or authorization_header
    role = query.get("role", "")
    session_id = query.get("sessionId", "")
    user_id = None
    if not role:
        user_id = user_of(token) if token else ""
        role = SPEAKER if user_id and _owner(session_id) == user_id else LISTENER
    if role == SPEAKER:
        user_id = user_id or user_of(token)
        if not session_id:
            if not settings().legacy_creation_enabled:
                raise Refused(errors.LegacyCreationDisabled.code)
            return ConnectionContext(role=SPEAKER, userId=user_id, legacy=True, dialect=dialect)
        return ConnectionContext(sessionId=_well_formed(session_id), role=SPEAKER, userId=user_id, legacy=bound,
                                 dialect=dialect)
    if role == LISTENER:
        if user_id is None and token:
            user_id = user_of(token)
        elif not user_id and not settings().allow_anonymous_listeners:
            raise errors.Unauthorized("token required")
        target = query.get("targetLanguage", "")
        if target and target not in SUPPORTED_LANGUAGES:
            raise Refused("UNSUPPORTED_TARGET_LANGUAGE")
        # The old protocol's listeners play inline audio only: its clients never ask.
        delivery = query.get("delivery", "") if dialect != OLD else ""
        if delivery not in ("", *DELIVERIES):
            raise Refused("UNSUPPORTED_DELIVERY")
        return ConnectionContext(sessionId=_well_formed(session_id), role=LISTENER, userId=user_id or "",
                                 targetLanguage=target, dialect=dialect, delivery=delivery)
    raise Refused("INVALID_ROLE")


def _owner(session_id: str) -> str | None:
    if not is_valid_session_id(session_id):
        return None  # refused below, as a listener's malformed session ID
    # Imported here: only a connection without a role needs the AWS SDK in the authorizer.
    from ..data.sessions import owner_of

    return owner_of(session_id)


def _well_formed(session_id: str) -> str:
    if not is_valid_session_id(session_id):
        raise Refused(errors.InvalidSessionId.code)
    return session_id
