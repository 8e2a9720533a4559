"""Where bearer tokens come from, and keeping them fresh.

A TokenProvider hands out a token and, when asked, a new one. TokenManager
(used by the HTTP and WebSocket clients) asks for the new one shortly before
the current token expires (``exp`` read from the JWT, not verified: the
server verifies) and once after the server rejected it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from .errors import AuthenticationFailed, NetworkUnavailable

# Refresh this many seconds before exp, so a request never leaves with a
# token that expires on the way.
DEFAULT_REFRESH_MARGIN = 60.0


@runtime_checkable
class TokenProvider(Protocol):
    async def token(self) -> str:
        """The current token (signing in first if needed)."""
        ...

    async def refresh(self) -> str:
        """A new token: the current one is about to expire or was rejected."""
        ...


class StaticTokenProvider:
    """A token obtained elsewhere. It cannot be refreshed: a 401 is final."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("token must not be empty")
        self._token = token

    async def token(self) -> str:
        return self._token

    async def refresh(self) -> str:
        return self._token


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (epoch seconds), or None for anything else."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


class TokenManager:
    """The token to send now: cached, refreshed before expiry and after a rejection.

    Concurrent callers share one refresh (a lock, and a rejection of an
    already-replaced token reuses the replacement).
    """

    def __init__(self, provider: TokenProvider, *, clock: Callable[[], float] = time.time,
                 refresh_margin: float = DEFAULT_REFRESH_MARGIN) -> None:
        self.provider = provider
        self._clock = clock
        self._margin = refresh_margin
        self._current: str | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        async with self._lock:
            if self._current is None:
                self._current = await self.provider.token()
            expiry = jwt_expiry(self._current)
            if expiry is not None and expiry - self._clock() <= self._margin:
                self._current = await self.provider.refresh()
            return self._current

    async def rejected(self, token: str) -> str | None:
        """A different token to retry with after ``token`` was refused, or None if there is none."""
        async with self._lock:
            if self._current != token:
                return self._current
            self._current = await self.provider.refresh()
            return None if self._current == token else self._current


class CognitoTokenProvider:
    """Signs in to a Cognito user pool with USER_PASSWORD_AUTH, then keeps the
    tokens fresh with REFRESH_TOKEN_AUTH (signing in again if the refresh token
    itself was refused). Works against AWS and the local stack (moto): pass its
    ``endpoint_url``. InitiateAuth needs no AWS credentials, so requests go
    unsigned.

    ``token_use`` picks the ID token (default; audience = app client) or the
    access token; the service accepts either.
    """

    def __init__(self, client_id: str, username: str, password: str, *, region: str,
                 endpoint_url: str | None = None, token_use: Literal["id", "access"] = "id",
                 client: Any | None = None) -> None:
        if not (client_id and username and password):
            raise ValueError("client_id, username and password are required")
        self.client_id = client_id
        self.username = username
        self._password = password
        self._result_key = "IdToken" if token_use == "id" else "AccessToken"
        if client is None:
            import boto3
            from botocore import UNSIGNED
            from botocore.config import Config

            client = boto3.client("cognito-idp", region_name=region, endpoint_url=endpoint_url,
                                  config=Config(signature_version=UNSIGNED, connect_timeout=5, read_timeout=10,
                                                retries={"mode": "standard", "max_attempts": 3}))
        self._client = client
        self._token: str | None = None
        self._refresh_token: str | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never show tokens or the password
        return f"CognitoTokenProvider(client_id={self.client_id!r}, username={self.username!r})"

    async def token(self) -> str:
        async with self._lock:
            if self._token is None:
                await self._sign_in()
            assert self._token is not None
            return self._token

    async def refresh(self) -> str:
        async with self._lock:
            if self._refresh_token:
                try:
                    result = await self._initiate("REFRESH_TOKEN_AUTH", {"REFRESH_TOKEN": self._refresh_token})
                    self._token = result[self._result_key]
                    return self._token
                except AuthenticationFailed:
                    self._refresh_token = None  # expired or revoked: sign in again below
            await self._sign_in()
            assert self._token is not None
            return self._token

    async def _sign_in(self) -> None:
        result = await self._initiate("USER_PASSWORD_AUTH", {"USERNAME": self.username, "PASSWORD": self._password})
        self._token = result[self._result_key]
        self._refresh_token = result.get("RefreshToken")

    async def _initiate(self, flow: str, parameters: dict[str, str]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

        try:
            # boto3 is synchronous; a thread keeps the event loop (and live audio) moving.
            response = await asyncio.to_thread(self._client.initiate_auth, ClientId=self.client_id,
                                               AuthFlow=flow, AuthParameters=parameters)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "Unknown"), error.get("Message", "")
            if code in ("TooManyRequestsException", "InternalErrorException", "ServiceUnavailable"):
                raise NetworkUnavailable(f"Cognito is unavailable ({code}); try again shortly.") from None
            raise AuthenticationFailed(f"Cognito refused to sign in {self.username}: {message or code}") from None
        except (ConnectionError, HTTPClientError) as exc:
            raise NetworkUnavailable(f"Cannot reach Cognito: {exc}") from None
        except BotoCoreError as exc:
            raise AuthenticationFailed(f"Cannot sign in {self.username}: {exc}") from None
        result = response.get("AuthenticationResult")
        if not result:
            raise AuthenticationFailed(f"Cognito asks {self.username} to complete a "
                                       f"{response.get('ChallengeName', 'challenge')} step first "
                                       f"(for example, set a permanent password).")
        return dict(result)
