"""Starting a broadcast: create the session over HTTP, then connect as its speaker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .auth import TokenProvider
from .errors import BroadcastClientError, BroadcastError, OperationQueued
from .http_service import SessionHttpService
from .models import Access, QualityTier, Session
from .ws_client import WebSocketClient

log = logging.getLogger("broadcast_client")


@dataclass
class Broadcast:
    """A live broadcast: its session and the speaker's connection."""

    session: Session
    live: WebSocketClient
    http: SessionHttpService

    @property
    def session_id(self) -> str:
        return self.session.session_id

    async def end(self, *, end_session: bool = True) -> None:
        """Sends what is still queued, closes the connection and (unless told
        not to) ends the session, even when the sending failed."""
        try:
            await self.live.drain()
            await self.live.settle()  # the server handled the last chunks before the session ends
        finally:
            await self.live.close()
            if end_session:
                await self.http.delete_session(self.session_id)


async def start_broadcast(http: SessionHttpService, websocket_url: str, token_provider: TokenProvider, *,
                          source_language: str, quality_tier: QualityTier = "standard",
                          partial_results_enabled: bool | None = None, min_stability_threshold: float | None = None,
                          max_buffer_timeout: float | None = None, access: Access | None = None,
                          **live_options: Any) -> Broadcast:
    """Creates a session and connects to it as its speaker.

    Raises BroadcastError naming the step that failed. A session created for a
    connection that then failed is ended again, so no orphan stays active.
    The partial-results settings and the access go to the session (the service's
    defaults when None: a link session, whose key is ``session.join_key``);
    ``live_options`` go to WebSocketClient (``limits``, ``timing``, ``callbacks``, ...).
    """
    try:
        session = await http.create_session(source_language, quality_tier,
                                            partial_results_enabled=partial_results_enabled,
                                            min_stability_threshold=min_stability_threshold,
                                            max_buffer_timeout=max_buffer_timeout, access=access)
    except OperationQueued as exc:
        exc.operation.cancel()  # a live broadcast cannot start later on its own
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        raise BroadcastError(f"Cannot start the broadcast: the session service at {http.base_url} is "
                             f"unreachable{cause}.") from exc
    except BroadcastClientError as exc:
        raise BroadcastError(f"Cannot create the session: {exc}") from exc

    live = WebSocketClient(websocket_url, session.session_id, role="speaker", token_provider=token_provider,
                           **live_options)
    try:
        await live.connect()
    except BroadcastClientError as exc:
        try:
            await http.delete_session(session.session_id)
            cleanup = "so it was ended again"
        except BroadcastClientError as cleanup_error:
            log.warning("could not end session %s: %s", session.session_id, cleanup_error)
            cleanup = f"and ending it failed too ({cleanup_error})"
        raise BroadcastError(f"Session {session.session_id} was created but the live connection failed, "
                             f"{cleanup}: {exc}") from exc
    return Broadcast(session, live, http)
