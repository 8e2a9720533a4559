"""The protocols the WebSocket API speaks, one module each, so that the handlers carry no
dialect branches and retiring a dialect is deleting its module, its line below and its routes:

- native: this service's own vocabulary (docs/api.md, "WebSocket API"), recognised by `role` in the query;
- hybrid: the published hybrid front-end's (hybrid.py), recognised by a query without `role` or `action`;
- old:    the old protocol's (old.py), recognised by `action` in the query;
- renamed: the old message names (createSession, audioChunk, pauseBroadcast, resumeBroadcast), understood
  on a connection of any dialect.

The authorizer decides a connection's dialect once (`admit`) and API Gateway hands it to every later
route in the connection context; each route then asks `answer`. docs/protocols.md has the table of
every published message and its answer.

The modules are imported on first use (or preloaded at init), so a function imports only the dialects
it meets: the native one starts without pydantic_core (models.py), the published ones bring it with their
first message.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from ... import errors
from ...domain import HYBRID, NATIVE, OLD, Connection, ConnectionContext
from ..ws import WsRequest

_MODULES = {NATIVE: "native", HYBRID: "hybrid", OLD: "old"}


def of(dialect: str) -> ModuleType:
    return import_module(f"{__name__}.{_MODULES.get(dialect, _MODULES[NATIVE])}")


def admit(query: dict[str, str], authorization_header: str | None = None) -> ConnectionContext:
    """The authorizer's decision: the dialect the query speaks, then that dialect's rules (queries.py)."""
    from .queries import admit

    return admit(query, authorization_header)


def preload(*dialects: str) -> None:
    """Imports these dialects now: at a function's init, where SnapStart snapshots them and Lambda does not
    bill the first request for them."""
    for dialect in dialects:
        of(dialect)


def connect(request: WsRequest) -> None:
    """$connect: records the connection, as its dialect does."""
    of(request.connection.dialect).connect(request)


def answer(request: WsRequest) -> dict | None:
    """A message route: the connection's dialect's handler for the route, or UNKNOWN_ACTION."""
    handler = of(request.connection.dialect).ROUTES.get(request.route_key)
    if handler is None:
        raise errors.UnknownAction()
    return handler(request)


def status_message(connection: Connection, change) -> dict | None:
    """What a connection of the session is told of a status change, in its dialect (None: nothing)."""
    return of(connection.dialect).status_message(connection.role, change)


def welcome_messages(state: dict, session) -> list[dict]:
    """What a connection ({sessionId, role, dialect}) is told of the session's state once it is open."""
    return of(state.get("dialect", NATIVE)).welcome_messages(state["role"], session)


def welcome_state(request: WsRequest) -> dict:
    """What the welcome function needs to shape the state for this connection."""
    return {"sessionId": request.connection.sessionId, "role": request.connection.role,
            "dialect": request.connection.dialect}


def audio_message(connection: Connection, chunk) -> dict | None:
    """What a listener is sent of a chunk of audio, in its dialect (None: nothing)."""
    return of(connection.dialect).audio_message(chunk)


def referenced_message(connection: Connection, chunk) -> dict | None:
    """What a listener sent referenced chunks is told of a stored chunk, in its dialect (None: nothing)."""
    return of(connection.dialect).referenced_message(chunk)


def farewell(session_id: str, dialect: str) -> dict:
    """What a connection of this dialect is told before the teardown closes it."""
    return of(dialect).ended_message(session_id)
