"""The connect query of each dialect, read once by the authorizer: which dialect it speaks, and who it
admits (usecases/admission.py has the rules; this translates a published query into them).

  role=...                              native: this service's own
  action=createSession|joinSession|refreshConnection
                                        old: the old protocol (old.py)
  neither                               hybrid: the published hybrid front-end (hybrid.py)

Kept apart from the dialect modules: the authorizer starts without the AWS SDK and pydantic.
"""

from __future__ import annotations

from ... import errors
from ...domain import HYBRID, LISTENER, NATIVE, OLD, SPEAKER, ConnectionContext
from ...platform.observability import metric
from ...platform.settings import settings
from ...usecases import admission

CREATE, JOIN, REFRESH = "createSession", "joinSession", "refreshConnection"


def admit(query: dict[str, str], authorization_header: str | None = None) -> ConnectionContext:
    if "action" in query:
        return _old(query, authorization_header)
    return admission.admit(query, authorization_header, dialect=NATIVE if "role" in query else HYBRID)


def _old(query: dict[str, str], authorization_header: str | None) -> ConnectionContext:
    action = query.get("action")
    known = action in (CREATE, JOIN, REFRESH)
    metric("LegacyProtocolMessage", action=action if known else "unknownConnectAction", dialect=OLD)
    if not settings().legacy_creation_enabled:
        raise admission.Refused(errors.LegacyCreationDisabled.code)
    if action == CREATE:
        if query.get("sessionId"):
            raise admission.Refused("SESSION_ID_WITH_CREATE")
        # The session's settings are read by $connect, which creates it (old.py).
        return admission.admit({"token": query.get("token", ""), "role": SPEAKER}, authorization_header,
                               dialect=OLD)
    if action == JOIN:
        return admission.admit({**_without(query, "role"), "role": LISTENER}, authorization_header, dialect=OLD)
    if action == REFRESH:
        # A speaker's refreshed connection carries its session's life on, as the first one did.
        return admission.admit(query, authorization_header, dialect=OLD, bound=True)
    raise admission.Refused("UNKNOWN_CONNECT_ACTION")


def _without(query: dict[str, str], name: str) -> dict[str, str]:
    return {key: value for key, value in query.items() if key != name}
