"""Messages from the server to sockets, through the API Gateway Management API."""

from __future__ import annotations

import json
from functools import cache

from botocore.exceptions import ClientError

from .aws import CONFIG, error_code, session
from .observability import logger
from .settings import settings


@cache
def _client():
    # The endpoint is the WebSocket API's own https://{api}.execute-api.{region}.amazonaws.com/{stage}.
    return session().create_client("apigatewaymanagementapi", endpoint_url=settings().websocket_management_url,
                                   config=CONFIG)


def _gone(exc: ClientError) -> bool:
    return error_code(exc) == "GoneException" or \
        exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 410


def post(connection_id: str, message: dict) -> bool:
    """Sends one JSON message. False if the connection is gone (410): the caller drops its record."""
    try:
        _client().post_to_connection(ConnectionId=connection_id, Data=json.dumps(message).encode())
    except ClientError as exc:
        if _gone(exc):
            return False
        raise
    return True


def offer(connection_id: str, message: dict) -> bool | None:
    """post() for a message the next one makes good (a status): True sent, False gone, None failed for
    another reason (logged, not raised, so that one socket's trouble does not hold back the others)."""
    try:
        return post(connection_id, message)
    except ClientError as exc:
        logger.warning("status post failed", extra={"awsErrorCode": error_code(exc)})
        return None


def disconnect(connection_id: str) -> None:
    """Closes the socket; a connection that is already gone counts as closed."""
    try:
        _client().delete_connection(ConnectionId=connection_id)
    except ClientError as exc:
        if not _gone(exc):
            raise


def exists(connection_id: str) -> bool:
    """Whether the connection is open (GetConnection); False if it is gone (410) or not yet established."""
    try:
        _client().get_connection(ConnectionId=connection_id)
    except ClientError as exc:
        if _gone(exc):
            return False
        raise
    return True
