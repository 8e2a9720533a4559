"""Client of the broadcast session service: the HTTP session API, the live
WebSocket connection, Cognito sign-in and the `broadcast-session` CLI."""

from .auth import CognitoTokenProvider, StaticTokenProvider, TokenManager, TokenProvider, jwt_expiry
from .broadcast import Broadcast, start_broadcast
from .config import ClientConfig, LocalUser, load_local_config, load_stack_config
from .errors import (
    AuthenticationFailed,
    BroadcastClientError,
    BroadcastError,
    BufferFull,
    ConfigurationError,
    Conflict,
    ConnectionLost,
    Forbidden,
    NetworkUnavailable,
    NotFound,
    OperationQueued,
    PolicyViolation,
    QueueFull,
    RateLimited,
    ServiceUnavailable,
    SessionApiError,
    SessionEnded,
    SessionLimitReached,
    SpeakerReplaced,
    StreamClosed,
    Unauthorized,
    ValidationFailed,
    VersionConflict,
    WebSocketError,
)
from .http_service import SessionHttpService
from .models import LANGUAGES, QUALITY_TIERS, STATUSES, QualityTier, Role, Session, SessionStatus
from .offline import PendingOperation
from .retry import RetryPolicy
from .ws_client import ConnectionCallbacks, ConnectionLimits, ConnectionTiming, WebSocketClient

__version__ = "0.1.0"

__all__ = [
    "LANGUAGES", "QUALITY_TIERS", "STATUSES",
    "AuthenticationFailed", "Broadcast", "BroadcastClientError", "BroadcastError", "BufferFull", "ClientConfig",
    "CognitoTokenProvider", "ConfigurationError", "Conflict", "ConnectionCallbacks", "ConnectionLimits",
    "ConnectionLost", "ConnectionTiming", "Forbidden", "LocalUser",
    "NetworkUnavailable", "NotFound", "OperationQueued", "PendingOperation", "PolicyViolation", "QualityTier",
    "QueueFull", "RateLimited", "RetryPolicy", "Role", "ServiceUnavailable", "Session", "SessionApiError",
    "SessionEnded", "SessionHttpService", "SessionLimitReached", "SessionStatus", "SpeakerReplaced", "StaticTokenProvider",
    "StreamClosed", "TokenManager", "TokenProvider", "Unauthorized", "ValidationFailed", "VersionConflict",
    "WebSocketClient", "WebSocketError", "jwt_expiry", "load_local_config", "load_stack_config",
    "start_broadcast",
]
